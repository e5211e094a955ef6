"""C2FMAE (arXiv 2603.09955): a masked autoencoder over RGB, semantic and instance maps with a
cascaded decoder, semantic -> instance -> RGB.

Data flow of one step, in the order of this file: mask the patch grid (one ``Masks`` per target,
shared unless ``per_modality_masking``) -> embed the three inputs and keep the visible tokens ->
shared ViT encoder -> three decoder stages on the masked positions -> one linear head per target
-> losses on the masked patches. ``mode="mae"`` keeps only RGB, random masking and MAE's decoder
(the mask tokens and the visible tokens decoded together by plain transformer blocks).
"""

import functools

import torch
import torch.nn as nn
from timm.models.vision_transformer import Block

from training.layers.adapters import InstanceAdapter, SemanticAdapter
from training.layers.cascade import CascadeStage, scatter_to_grid
from training.layers.patch_embed import rgb_patch_embed, sincos_pos_embed
from training.losses import instance_loss, rgb_loss, semantic_loss
from training.masking import RANDOM, Masks, generate_masks
from training.models.config import ModelConfig
from training.models.encoder_io import EncoderExportMixin
from training.patches import LABEL_STRIDE, gather_patches, label_patches, patchify

TARGETS = ("semantic", "instance", "rgb")


class C2FMAE(EncoderExportMixin, nn.Module):
    """``model(batch, strategy, generator) -> {"loss", "losses", "mask", "preds", "masks"}``;
    ``training.pictures.draw_predictions`` turns an output into drawable images."""

    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__()
        self.cfg, self.num_classes = cfg, num_classes
        self.targets = ("rgb",) if cfg.mode == "mae" else TARGETS
        d, dd, p, grid = cfg.embed_dim, cfg.decoder_dim, cfg.patch_size, cfg.grid
        # input adapters; each one's bias doubles as its modality embedding
        self.patch_embed = rgb_patch_embed(cfg.img_size, p, d)
        if cfg.mode != "mae":
            self.semantic_embed = SemanticAdapter(num_classes, p, d, cfg.semantic_embed_dim)
            self.instance_embed = InstanceAdapter(p, d)
        # encoder; parameter names follow timm's VisionTransformer (see encoder_io)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        pos = torch.cat([torch.zeros(1, d), sincos_pos_embed(d, grid)])[None]
        self.pos_embed = nn.Parameter(pos, requires_grad=False)
        self.blocks = nn.Sequential(*[vit_block(d, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(d, eps=1e-6)
        # decoder
        self.decoder_embed = nn.Linear(d, dd)
        self.decoder_pos_embed = nn.Parameter(sincos_pos_embed(dd, grid)[None], requires_grad=False)
        if cfg.mode == "mae":
            self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
            self.decoder_blocks = nn.Sequential(
                *[vit_block(dd, cfg.decoder_heads, cfg.mlp_ratio) for _ in range(cfg.decoder_depth)]
            )
            self.decoder_norm = nn.LayerNorm(dd, eps=1e-6)
        else:
            if cfg.mode == "c2f":
                self.grid_token = nn.Parameter(torch.zeros(1, 1, dd))
            self.stages = nn.ModuleDict(
                {t: CascadeStage(dd, cfg.stage_depth, cfg.decoder_heads, cfg.mlp_ratio) for t in TARGETS}
            )
            if cfg.decoder_context_embed:
                sources = 1 if cfg.input_fusion == "sum" else len(TARGETS)
                self.decoder_source_embed = nn.Embedding(sources, dd)
        cells = (p // LABEL_STRIDE) ** 2
        out = {"semantic": cells * num_classes, "instance": cells * cfg.instance_embed_dim, "rgb": p * p * 3}
        self.heads = nn.ModuleDict({t: nn.Linear(dd, out[t]) for t in self.targets})
        self.init_weights()

    def init_weights(self) -> None:
        """Xavier-uniform linear maps (conv projections flattened), N(0, 0.02) tokens, zero
        biases; the RGB patch bias as ``cfg.patch_bias_init`` says."""
        for name, param in self.named_parameters():
            if name.endswith("_token"):
                nn.init.normal_(param, std=0.02)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                nn.init.xavier_uniform_(module.weight.view(module.weight.shape[0], -1))
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
        if self.cfg.patch_bias_init == "torch":
            proj = self.patch_embed.proj
            bound = proj.weight[0].numel() ** -0.5
            nn.init.uniform_(proj.bias, -bound, bound)

    # ---------------------------------------------------------------- forward
    def forward(self, batch: dict, strategy: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """batch: the training batch contract (docs/contracts.md); strategy: [N] masking
        strategy per sample, or [N, 3] per-patch mixing weights (see ``generate_masks``);
        ignored in mae mode (always random)."""
        masks = self.mask_patches(batch, strategy, generator)
        latent = self.forward_encoder(batch, masks)
        preds = self.forward_decoder(latent, masks)
        losses = self.forward_loss(batch, preds, masks)
        weights = {
            "semantic": self.cfg.semantic_loss_weight,
            "instance": self.cfg.instance_loss_weight,
            "rgb": self.cfg.rgb_loss_weight,
        }
        return {
            "loss": sum(weights[t] * losses[t] for t in self.targets),
            "losses": losses,
            "mask": masks["rgb"].mask,
            "preds": preds,
            "masks": masks,
        }

    def mask_patches(self, batch: dict, strategy: torch.Tensor, generator: torch.Generator | None) -> dict[str, Masks]:
        """One ``Masks`` per target; the same object for all unless ``per_modality_masking``."""
        cfg = self.cfg
        if cfg.mode == "mae":
            strategy = torch.full((strategy.shape[0],), RANDOM, device=strategy.device)
        maps = {} if cfg.mode == "mae" else {"semantic": batch["semantic"], "instance": batch["instance"]}

        def draw() -> Masks:
            return generate_masks(
                strategy,
                num_patches=cfg.num_patches,
                mask_ratio=cfg.mask_ratio,
                patch_size=cfg.patch_size,
                generator=generator,
                **maps,
            )

        if cfg.per_modality_masking:
            return {t: draw() for t in self.targets}
        shared = draw()
        return dict.fromkeys(self.targets, shared)

    # ---------------------------------------------------------------- encoder
    def embed_visible(self, batch: dict, masks: dict[str, Masks]) -> dict[str, torch.Tensor]:
        """Tokens of each input's visible patches, no position yet: name -> [N, K, D]. The label
        adapters embed only the visible patches; RGB is embedded whole, as in MAE."""
        ids = {t: masks[t].ids_keep for t in self.targets}
        tokens = {"rgb": gather_patches(self.patch_embed(batch["image"]), ids["rgb"])}
        if self.cfg.mode != "mae":
            tokens["semantic"] = self.semantic_embed(batch["semantic"], ids["semantic"])
            tokens["instance"] = self.instance_embed(batch["instance"], ids["instance"])
        return tokens

    def forward_encoder(self, batch: dict, masks: dict[str, Masks]) -> torch.Tensor:
        """-> latent [N, 1 + T, D]: cls, then the visible tokens of each target in TARGETS order
        (T = 3 * len_keep with ``tokens`` fusion; ``sum`` fusion and mae mode: T = len_keep)."""
        tokens = self.embed_visible(batch, masks)
        pos = self.pos_embed[:, 1:].expand(batch["image"].shape[0], -1, -1)
        if self.cfg.input_fusion == "sum":
            shared = masks["rgb"].ids_keep
            return self.run_encoder([sum(tokens.values()) + gather_patches(pos, shared)])
        return self.run_encoder([tokens[t] + gather_patches(pos, masks[t].ids_keep) for t in self.targets])

    def forward_features(self, image: torch.Tensor) -> torch.Tensor:
        """RGB only, no masking (downstream use): image [N, 3, H, W] -> [N, 1 + L, D],
        the same computation as timm's ``VisionTransformer.forward_features``."""
        return self.run_encoder([self.patch_embed(image) + self.pos_embed[:, 1:]])

    def run_encoder(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        """tokens: list of [N, T_i, D] -> [N, 1 + sum T_i, D] with the cls token first."""
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(tokens[0].shape[0], -1, -1)
        return self.norm(self.blocks(torch.cat([cls, *tokens], dim=1)))

    # ---------------------------------------------------------------- decoder
    def forward_decoder(self, latent: torch.Tensor, masks: dict[str, Masks]) -> dict[str, torch.Tensor]:
        """latent: [N, 1 + T, D] -> head outputs per target at its masked patches [N, M, out].
        H = decoder_embed(latent), plus ``context_embed`` on the tokens after cls when
        ``decoder_context_embed`` (cross-attention alone cannot tell where a token sits)."""
        if self.cfg.mode == "mae":
            return {"rgb": self.heads["rgb"](self.mae_decoder(latent, masks["rgb"]))}
        h = self.decoder_embed(latent)
        if self.cfg.decoder_context_embed:
            h = torch.cat([h[:, :1], h[:, 1:] + self.context_embed(masks).to(h.dtype)], dim=1)
        ids = {t: masks[t].ids_masked() for t in TARGETS}
        pos = {t: gather_patches(self.decoder_pos_embed.expand(h.shape[0], -1, -1), ids[t]) for t in TARGETS}
        f_sem = self.stages["semantic"](pos["semantic"], h)
        f_inst = self.stages["instance"](pos["instance"], self.stage_context(h, f_sem, ids["semantic"]))
        f_rgb = self.stages["rgb"](pos["rgb"], self.stage_context(h, f_inst, ids["instance"]))
        features = {"semantic": f_sem, "instance": f_inst, "rgb": f_rgb}
        return {t: self.heads[t](features[t]) for t in TARGETS}

    def context_embed(self, masks: dict[str, Masks]) -> torch.Tensor:
        """[N, T, Dd] for the encoder tokens after cls, in ``forward_encoder``'s order: the decoder
        position embedding of each token's patch plus the embedding of the input it came from."""
        sources = ("rgb",) if self.cfg.input_fusion == "sum" else TARGETS
        pos = self.decoder_pos_embed.expand(masks["rgb"].ids_keep.shape[0], -1, -1)
        source = self.decoder_source_embed.weight
        return torch.cat([gather_patches(pos, masks[t].ids_keep) + source[i] for i, t in enumerate(sources)], dim=1)

    def stage_context(self, h: torch.Tensor, prev: torch.Tensor, prev_ids: torch.Tensor) -> torch.Tensor:
        """K = V for the next stage: c2f: H (+) scatter(F_prev) [N, T + L, Dd]; parallel: H."""
        if self.cfg.mode == "parallel":
            return h
        grid = scatter_to_grid(prev, prev_ids, self.grid_token, self.decoder_pos_embed)
        return torch.cat([h, grid], dim=1)

    def mae_decoder(self, latent: torch.Tensor, masks: Masks) -> torch.Tensor:
        """MAE's decoder: visible + mask tokens unshuffled onto the grid -> [N, M, Dd] features
        at the masked patches."""
        x = self.decoder_embed(latent)
        n, num = x.shape[0], self.cfg.num_patches
        fill = self.mask_token.expand(n, num - masks.ids_keep.shape[1], -1).to(x.dtype)
        grid = gather_patches(torch.cat([x[:, 1:], fill], dim=1), masks.ids_restore)
        x = torch.cat([x[:, :1], grid + self.decoder_pos_embed], dim=1)
        x = self.decoder_norm(self.decoder_blocks(x))[:, 1:]
        return gather_patches(x, masks.ids_masked())

    # ---------------------------------------------------------------- losses
    def forward_loss(
        self, batch: dict, preds: dict[str, torch.Tensor], masks: dict[str, Masks]
    ) -> dict[str, torch.Tensor]:
        """Per-target losses on the masked patches: name -> scalar (fp32)."""
        cfg, out = self.cfg, {}
        for t in self.targets:
            target = gather_patches(self.targets_of(batch, t), masks[t].ids_masked())
            if t == "rgb":
                out[t] = rgb_loss(preds[t], target, cfg.norm_pix_loss)
            elif t == "semantic":
                out[t] = semantic_loss(preds[t].unflatten(-1, (target.shape[-1], -1)), target)
            else:
                out[t] = instance_loss(
                    preds[t].unflatten(-1, (target.shape[-1], -1)),
                    target,
                    cfg.instance_pull_margin,
                    cfg.instance_push_margin,
                )
        return out

    def targets_of(self, batch: dict, target: str) -> torch.Tensor:
        """Per-patch targets: rgb [N, L, p*p*3] pixels; semantic/instance [N, L, (p/4)^2] ids."""
        if target == "rgb":
            return self.patchify(batch["image"])
        return label_patches(batch[target], self.cfg.patch_size)

    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """images: [N, 3, H, W] -> [N, L, p*p*3]."""
        return patchify(images, self.cfg.patch_size)


def vit_block(dim: int, num_heads: int, mlp_ratio: float) -> Block:
    """timm's pre-norm ViT block with qkv bias and LayerNorm eps 1e-6, as MAE's and timm's
    ``VisionTransformer`` (timm's ``Block`` default norm has changed across versions)."""
    return Block(dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=functools.partial(nn.LayerNorm, eps=1e-6))
