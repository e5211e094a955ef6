"""C2FMAE (arXiv 2603.09955): a masked autoencoder over RGB, semantic and instance maps.

The model is composed of parts that ``factory.build_model`` chooses and passes in, as MultiMAE
takes its adapters and heads: input adapters (RGB, and for C2FMAE the two label maps), a decoder
(``decoders.py``: cascade, parallel stages or MAE's) and one linear head per target; the shared
ViT encoder is its own. Data flow of one step, in the order of this file: mask the patch grid (one
``Masks`` per target, shared unless ``per_modality_masking``) -> embed each input's visible patches
-> shared ViT encoder -> decoder features at the masked positions -> heads -> losses on the masked
patches.
"""

import torch
import torch.nn as nn

from training.layers.blocks import vit_block
from training.layers.patch_embed import sincos_pos_embed
from training.losses import instance_loss, rgb_loss, semantic_loss
from training.masking import RANDOM, Masks, generate_masks
from training.models.config import ModelConfig
from training.models.encoder_io import EncoderExportMixin
from training.patches import gather_patches, label_patches, patchify

# Where each input's adapter is registered (checkpoint names; rgb: timm's) and what it reads.
ADAPTER_NAMES = {"rgb": "patch_embed", "semantic": "semantic_embed", "instance": "instance_embed"}
BATCH_KEYS = {"rgb": "image", "semantic": "semantic", "instance": "instance"}
GUIDES = ("semantic", "instance")  # the label maps guided masking reads, when they are inputs


class C2FMAE(EncoderExportMixin, nn.Module):
    """``model(batch, strategy, generator) -> {"loss", "losses", "mask", "preds", "masks"}``.

    adapters: input -> module, ``(input, ids_keep [N, K]) -> tokens [N, K, D]``, in registration
    order (their tokens are summed in this order with ``sum`` fusion); decoder: ``(latent, masks)
    -> target -> features [N, M, Dd]``, its parts registered here without a prefix; heads:
    target -> module, in the order of the encoder's token groups (``tokens`` fusion)."""

    def __init__(self, cfg: ModelConfig, adapters: dict[str, nn.Module], decoder: nn.Module, heads: nn.ModuleDict):
        super().__init__()
        self.cfg, self.inputs = cfg, tuple(adapters)
        d = cfg.embed_dim
        # input adapters; each one's bias doubles as its modality embedding
        for name, adapter in adapters.items():
            self.add_module(ADAPTER_NAMES[name], adapter)
        # encoder; parameter names follow timm's VisionTransformer (see encoder_io)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        pos = torch.cat([torch.zeros(1, d), sincos_pos_embed(d, cfg.grid)])[None]
        self.pos_embed = nn.Parameter(pos, requires_grad=False)
        self.blocks = nn.Sequential(*[vit_block(d, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.register_decoder(decoder)
        self.heads, self.targets = heads, tuple(heads)
        self.init_weights()

    def register_decoder(self, decoder: nn.Module) -> None:
        """Register the decoder's own parameters and sub-modules here under their own names and
        keep it as ``self.decoder``, a plain attribute for its forward. Both hold the same tensors
        (as tied weights do), so state_dict names stay those checkpoints have
        (``decoder_embed.weight``, ``stages.rgb.*``, ``mask_token``), with no ``decoder.`` prefix."""
        for name, param in decoder.named_parameters(recurse=False):
            self.register_parameter(name, param)
        for name, module in decoder.named_children():
            self.add_module(name, module)
        object.__setattr__(self, "decoder", decoder)  # nn.Module.__setattr__ would register it again

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
        strategy per sample, or [N, 3] per-patch mixing weights (see ``generate_masks``)."""
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
        """One ``Masks`` per target; the same object for all unless ``per_modality_masking``.
        The label maps among the inputs guide the masks; a model with none (MAE) ignores the
        strategies and masks every sample at random."""
        cfg = self.cfg
        maps = {t: batch[t] for t in GUIDES if t in self.inputs}
        if not maps:
            strategy = torch.full((strategy.shape[0],), RANDOM, device=strategy.device)

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
        """Tokens of each input's visible patches, no position yet: input -> [N, K, D]."""
        return {t: getattr(self, ADAPTER_NAMES[t])(batch[BATCH_KEYS[t]], masks[t].ids_keep) for t in self.inputs}

    def forward_encoder(self, batch: dict, masks: dict[str, Masks]) -> torch.Tensor:
        """-> latent [N, 1 + T, D]: cls, then the visible tokens of each target in ``targets``
        order (T = 3 * len_keep for C2FMAE with ``tokens`` fusion; with ``sum`` fusion, one token
        per visible patch: T = len_keep)."""
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
        """latent: [N, 1 + T, D] -> head outputs per target at its masked patches [N, M, out]."""
        features = self.decoder(latent, masks)
        return {t: self.heads[t](features[t]) for t in self.targets}

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
