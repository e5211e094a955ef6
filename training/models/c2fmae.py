"""C2FMAE (arXiv 2603.09955): a masked autoencoder over RGB, semantic and instance maps.

The model is composed of parts that ``factory.build_model`` chooses and passes in, as MultiMAE
takes its adapters and heads: input adapters (RGB, and for C2FMAE the two label maps), a decoder
(``decoders.py``: cascade, parallel stages or MAE's) and one linear head per target; the shared
ViT encoder is its own. Data flow of one step, in the order of this file: mask the patch grid (one
``Masks`` per target, shared unless ``per_modality_masking``) -> choose the encoder's tokens among
the visible (input, patch) pairs (all of them unless modality dropout or a token budget is on:
``training.masking.visible_tokens``) -> embed each input's visible patches -> shared ViT encoder ->
decoder features at the masked positions -> heads -> losses on the masked patches.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.layers.blocks import vit_block
from training.layers.patch_embed import sincos_pos_embed
from training.loss_probe import probe_losses
from training.losses import instance_loss, rgb_loss, semantic_loss
from training.masking import RANDOM, Masks, generate_masks
from training.masking.visible_tokens import Visible, all_visible, choose_visible
from training.models.config import ModelConfig
from training.models.encoder_io import EncoderExportMixin
from training.patches import gather_patches, label_patches, patchify

# Where each input's adapter is registered (checkpoint names; rgb: timm's) and what it reads.
ADAPTER_NAMES = {"rgb": "patch_embed", "semantic": "semantic_embed", "instance": "instance_embed"}
BATCH_KEYS = {"rgb": "image", "semantic": "semantic", "instance": "instance"}
GUIDES = ("semantic", "instance")  # the label maps guided masking reads, when they are inputs


class C2FMAE(EncoderExportMixin, nn.Module):
    """``model(batch, strategy, generator) -> {"loss", "losses", "mask", "preds", "masks",
    "latent"}``; ``loss_probe(batch, strategy, out)`` measures the losses' balance for the logs.

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
        visible = self.choose_visible(masks, generator)
        latent = self.forward_encoder(batch, masks, visible)
        preds = self.forward_decoder(latent, masks, visible)
        losses = self.forward_loss(batch, preds, masks)
        return {
            "loss": sum(self.loss_weights[t] * losses[t] for t in self.targets),
            "losses": losses,
            "mask": masks["rgb"].mask,
            "preds": preds,
            "masks": masks,
            "latent": latent,
        }

    @property
    def loss_weights(self) -> dict[str, float]:
        """target -> the weight of its loss in the total (``model.<target>_loss_weight``)."""
        cfg = self.cfg
        return {"semantic": cfg.semantic_loss_weight, "instance": cfg.instance_loss_weight, "rgb": cfg.rgb_loss_weight}

    def mask_patches(self, batch: dict, strategy: torch.Tensor, generator: torch.Generator | None) -> dict[str, Masks]:
        """One ``Masks`` per target; the same object for all unless ``per_modality_masking``.
        The label maps among the inputs guide the masks; a model with none (MAE) ignores the
        strategies and masks every sample at random."""
        cfg = self.cfg
        maps = {t: batch[t] for t in GUIDES if t in self.inputs}
        strategy = self.strategy_used(strategy)

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

    def strategy_used(self, strategy: torch.Tensor) -> torch.Tensor:
        """The strategies masking follows: ``strategy``, or all random for a model whose inputs
        include no label map (MAE)."""
        if any(t in self.inputs for t in GUIDES):
            return strategy
        return torch.full((strategy.shape[0],), RANDOM, device=strategy.device)

    def token_groups(self) -> tuple[str, ...]:
        """The target whose mask keeps each group of encoder tokens after cls, in order: one per
        target with ``tokens`` fusion, the shared (RGB) mask's with ``sum``."""
        return ("rgb",) if self.cfg.input_fusion == "sum" else self.targets

    def choose_visible(self, masks: dict[str, Masks], generator: torch.Generator | None) -> Visible:
        """The encoder's tokens: every visible (input, patch) pair, or those that modality dropout
        and the token budget leave (``visible_tokens.choose_visible``; draws from ``generator``
        after the masks, only when a switch is on)."""
        cfg = self.cfg
        return choose_visible(
            self.all_visible(masks),
            tuple(g in GUIDES for g in self.token_groups()),
            dropout=cfg.modality_dropout,
            budget=cfg.token_budget,
            concentration=cfg.budget_concentration,
            generator=generator,
        )

    def all_visible(self, masks: dict[str, Masks]) -> Visible:
        """Every visible patch of every token group, in order (no switch on)."""
        return all_visible([masks[g].ids_keep for g in self.token_groups()])

    # ---------------------------------------------------------------- encoder
    def embed_visible(self, batch: dict, masks: dict[str, Masks]) -> dict[str, torch.Tensor]:
        """Tokens of each input's visible patches, no position yet: input -> [N, K, D]."""
        return {t: getattr(self, ADAPTER_NAMES[t])(batch[BATCH_KEYS[t]], masks[t].ids_keep) for t in self.inputs}

    def forward_encoder(self, batch: dict, masks: dict[str, Masks], visible: Visible | None = None) -> torch.Tensor:
        """-> latent [N, 1 + T, D]: cls, then the tokens ``visible`` picks (default: every visible
        patch of each target in ``targets`` order, T = 3 * len_keep for C2FMAE with ``tokens``
        fusion; with ``sum`` fusion, one token per visible patch: T = len_keep)."""
        visible = self.all_visible(masks) if visible is None else visible
        tokens = self.embed_visible(batch, masks)
        pos = self.pos_embed[:, 1:].expand(batch["image"].shape[0], -1, -1)
        if self.cfg.input_fusion == "sum":
            shared = masks["rgb"].ids_keep
            return self.run_encoder([self.fuse(tokens, visible.dropped) + gather_patches(pos, shared)])
        x = torch.cat([tokens[t] + gather_patches(pos, masks[t].ids_keep) for t in self.targets], dim=1)
        if visible.index is not None:
            x = gather_patches(x, visible.index)
        return self.run_encoder([x], visible.valid)

    def fuse(self, tokens: dict[str, torch.Tensor], dropped: torch.Tensor | None) -> torch.Tensor:
        """``sum`` fusion: each patch's input tokens added, [N, K, D]; a dropped sample ([N] bool)
        keeps its RGB term only."""
        if dropped is None:
            return sum(tokens.values())
        keep = (~dropped)[:, None, None].to(tokens["rgb"].dtype)
        return sum(x if t not in GUIDES else x * keep for t, x in tokens.items())

    def forward_features(self, image: torch.Tensor) -> torch.Tensor:
        """RGB only, no masking (downstream use): image [N, 3, H, W] -> [N, 1 + L, D],
        the same computation as timm's ``VisionTransformer.forward_features``."""
        return self.run_encoder([self.patch_embed(image) + self.pos_embed[:, 1:]])

    def run_encoder(self, tokens: list[torch.Tensor], valid: torch.Tensor | None = None) -> torch.Tensor:
        """tokens: list of [N, T_i, D] -> [N, 1 + sum T_i, D] with the cls token first. valid:
        [N, sum T_i] bool, False for padding no token attends to (None: all valid)."""
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(tokens[0].shape[0], -1, -1)
        x = torch.cat([cls, *tokens], dim=1)
        if valid is None:
            return self.norm(self.blocks(x))
        attend = F.pad(valid, (1, 0), value=True)[:, None, None]  # [N, 1, 1, 1 + T]
        for block in self.blocks:
            x = block(x, attn_mask=attend)
        return self.norm(x)

    # ---------------------------------------------------------------- decoder
    def forward_decoder(
        self, latent: torch.Tensor, masks: dict[str, Masks], visible: Visible | None = None
    ) -> dict[str, torch.Tensor]:
        """latent: [N, 1 + T, D] (tokens as ``visible`` says; default all visible) -> head outputs
        per target at its masked patches [N, M, out]."""
        features = self.decoder(latent, masks, self.all_visible(masks) if visible is None else visible)
        return {t: self.heads[t](features[t]) for t in self.targets}

    # ---------------------------------------------------------------- losses
    def forward_loss(
        self, batch: dict, preds: dict[str, torch.Tensor], masks: dict[str, Masks]
    ) -> dict[str, torch.Tensor]:
        """Per-target losses on the masked patches: name -> scalar (fp32)."""
        cfg, out = self.cfg, {}
        for t in self.targets:
            pred, target = self.loss_inputs(batch, preds, masks, t)
            if t == "rgb":
                out[t] = rgb_loss(pred, target, cfg.norm_pix_loss)
            elif t == "semantic":
                out[t] = semantic_loss(pred, target)
            else:
                out[t] = instance_loss(pred, target, cfg.instance_pull_margin, cfg.instance_push_margin)
        return out

    def loss_inputs(
        self, batch: dict, preds: dict[str, torch.Tensor], masks: dict[str, Masks], target: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(prediction, target) at ``target``'s masked patches, shaped as its loss takes them:
        rgb [N, M, p*p*3] twice; semantic logits [N, M, S, C] and ids [N, M, S]; instance
        embeddings [N, M, S, E] and ids [N, M, S]."""
        truth = gather_patches(self.targets_of(batch, target), masks[target].ids_masked())
        if target == "rgb":
            return preds[target], truth
        return preds[target].unflatten(-1, (truth.shape[-1], -1)), truth

    def loss_probe(self, batch: dict, strategy: torch.Tensor, out: dict) -> dict[str, torch.Tensor]:
        """The losses' balance on this batch, for the logs (``training.loss_probe``): name ->
        [2] (sum, count) to average over micro-batches and ranks. Call after ``forward``,
        before ``backward`` (it differentiates ``out["latent"]``, keeping the graph)."""
        return probe_losses(self, batch, self.strategy_used(strategy), out)

    def targets_of(self, batch: dict, target: str) -> torch.Tensor:
        """Per-patch targets: rgb [N, L, p*p*3] pixels; semantic/instance [N, L, (p/4)^2] ids."""
        if target == "rgb":
            return self.patchify(batch["image"])
        return label_patches(batch[target], self.cfg.patch_size)

    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """images: [N, 3, H, W] -> [N, L, p*p*3]."""
        return patchify(images, self.cfg.patch_size)
