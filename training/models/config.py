"""ModelConfig: every architectural choice of the model, with MAE ViT-B/16 defaults.

Architecture presets (``ARCH_PRESETS``) fill the size fields; ``ModelConfig.from_arch`` applies
one and then any overrides. ``mode`` picks the parts ``factory.build_model`` composes the model
from: ``c2f`` (cascaded decoder), ``parallel`` (three independent decoder stages, each seeing only
the encoder) or ``mae`` (RGB only, random masking, MAE's decoder).
"""

from typing import Annotated, Literal

import pydantic

from plumbing.config_fields import Bool, Float, Positive, PositiveFloat, Probability, Str, section
from training.masking.patch_masks import num_keep

MODES = ("c2f", "parallel", "mae")
FUSIONS = ("tokens", "sum")
PATCH_BIAS_INITS = ("zeros", "torch")

# timm ViTs this encoder can claim to be (timm's own sizes; the rest of timm's defaults match ours).
TIMM_VITS: dict[str, dict] = {
    "vit_tiny_patch16_224": dict(img_size=224, patch_size=16, embed_dim=192, depth=12, num_heads=3),
    "vit_small_patch16_224": dict(img_size=224, patch_size=16, embed_dim=384, depth=12, num_heads=6),
    "vit_base_patch16_224": dict(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "vit_large_patch16_224": dict(img_size=224, patch_size=16, embed_dim=1024, depth=24, num_heads=16),
}

AUTO = "auto"  # timm_model: the name in TIMM_VITS with exactly these sizes, or None

# The timm name of each follows from its sizes: vit_base_patch16_224, vit_large_patch16_224 and,
# for vit_tiny_cpu (patch 8, width 64), none: its export records VisionTransformer arguments.
ARCH_PRESETS: dict[str, dict] = {
    "vit_base_patch16": dict(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "vit_large_patch16": dict(img_size=224, patch_size=16, embed_dim=1024, depth=24, num_heads=16),
    # runs a training step in well under a second on two CPU cores
    "vit_tiny_cpu": dict(
        img_size=64,
        patch_size=8,
        embed_dim=64,
        depth=4,
        num_heads=4,
        decoder_dim=64,
        decoder_depth=2,
        decoder_heads=4,
        stage_depth=1,
        semantic_embed_dim=16,
    ),
}


def with_arch(values: dict) -> dict:
    """`values` (model keys) over the sizes of preset `values["arch"]`: the preset fills what
    `values` does not set, and timm_model is derived again unless `values` names one.
    ValueError for an unknown preset."""
    arch = values.get("arch")
    if arch is None:
        return dict(values)
    if arch not in ARCH_PRESETS:
        raise ValueError(f"unknown model.arch {arch!r}; known: {', '.join(sorted(ARCH_PRESETS))}")
    return {"timm_model": AUTO, **ARCH_PRESETS[arch], **values}


@section(frozen=True)
class ModelConfig:
    """Defaults: MAE ViT-B/16 at 224 (He et al. 2022): decoder 512 wide, 8 deep, mask ratio 0.75,
    normalised-pixel targets. ``arch`` names the preset the sizes came from (``ARCH_PRESETS``;
    None: set by hand). ``timm_model`` is the timm ViT the encoder is: ``auto`` (default) finds it
    from the sizes (``TIMM_VITS``), a name must agree with them, None claims none (export then
    records VisionTransformer arguments). ``stage_depth`` blocks per
    cascade stage; ``decoder_depth`` is the
    MAE-mode decoder. ``input_fusion``: ``tokens`` gives every modality its own visible tokens
    (MultiMAE-style, 3x the encoder tokens); ``sum`` adds the three embeddings of a patch into one
    token (MAE's encoder cost; needs a shared mask). ``decoder_context_embed`` (c2f, parallel)
    adds to each encoder token in the decoder's context the decoder position embedding of its
    patch and a learned embedding of the input it came from (one per input with ``tokens``, one
    for the fused token with ``sum``); ``mae`` mode keeps MAE's decoder whatever its value.
    ``modality_dropout``, ``token_budget`` and ``budget_concentration``: which visible tokens the
    encoder gets (``training.masking.visible_tokens``); the defaults give it all of them."""

    mode: Literal["c2f", "parallel", "mae"] = "c2f"
    arch: Str | None = None
    timm_model: Str | None = AUTO
    img_size: Positive = 224
    patch_size: Positive = 16
    embed_dim: Positive = 768
    depth: Positive = 12
    num_heads: Positive = 12
    mlp_ratio: Annotated[float, pydantic.Strict(), pydantic.Field(gt=0)] = 4.0
    decoder_dim: Positive = 512
    decoder_depth: Positive = 8
    decoder_heads: Positive = 16
    stage_depth: Positive = 2
    mask_ratio: Annotated[float, pydantic.Strict(), pydantic.Field(ge=0, lt=1)] = 0.75
    per_modality_masking: Bool = False
    input_fusion: Literal["tokens", "sum"] = "tokens"
    decoder_context_embed: Bool = True
    semantic_embed_dim: Positive = 64
    instance_embed_dim: Positive = 8
    norm_pix_loss: Bool = True
    # "torch": PyTorch's default conv bias init, U(+-1/sqrt(3 p^2)), which MAE keeps
    patch_bias_init: Literal["zeros", "torch"] = "zeros"
    # MAE pre-training checkpoint to start a new run from (models/mae_checkpoint.py); not re-read on resume
    init_from: Str | None = None
    semantic_loss_weight: Float = 1.0
    instance_loss_weight: Float = 1.0
    rgb_loss_weight: Float = 1.0
    instance_pull_margin: Float = 0.5
    instance_push_margin: Float = 3.0
    # input shift (training/masking/visible_tokens.py, docs/training.md "Switches"); off by default
    modality_dropout: Probability = 0.0  # per sample, drop both label inputs with this probability
    token_budget: Positive | None = None  # encoder tokens per sample, split across the inputs
    budget_concentration: PositiveFloat = 1.0  # Dirichlet concentration of the budget's split

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> "ModelConfig":
        if self.arch is not None and self.arch not in ARCH_PRESETS:
            raise ValueError(f"unknown arch {self.arch!r}; known: {', '.join(sorted(ARCH_PRESETS))}")
        if self.input_fusion == "sum" and self.per_modality_masking:
            raise ValueError("input_fusion 'sum' needs one shared mask (per_modality_masking off)")
        self._check_switches()
        if self.img_size % self.patch_size or self.patch_size % 4:
            raise ValueError(
                f"need img_size % patch_size == 0 and patch_size % 4 == 0, got {self.img_size} and {self.patch_size}"
            )
        self._check_timm_name()
        return self

    def _check_switches(self) -> None:
        """Modality dropout and the token budget need label inputs; the budget, one token per
        (input, patch) pair (``tokens`` fusion) and at most all of them."""
        if (self.modality_dropout or self.token_budget is not None) and self.mode == "mae":
            raise ValueError("modality_dropout and token_budget need label inputs; mode 'mae' has RGB only")
        if self.token_budget is None:
            return
        if self.input_fusion == "sum":
            raise ValueError("token_budget splits tokens across inputs: it needs input_fusion 'tokens'")
        most = 3 * num_keep(self.num_patches, self.mask_ratio)
        if self.token_budget > most:
            raise ValueError(f"token_budget {self.token_budget} is more than the {most} visible (input, patch) pairs")

    def _check_timm_name(self) -> None:
        if self.timm_model == AUTO:
            found = [name for name, sizes in TIMM_VITS.items() if self._has_sizes(sizes)]
            object.__setattr__(self, "timm_model", found[0] if found else None)  # frozen
        if self.timm_model is None:
            return
        if self.timm_model not in TIMM_VITS:
            raise ValueError(
                f"timm_model {self.timm_model!r} is not one of {sorted(TIMM_VITS)} "
                "(null: export records the VisionTransformer arguments)"
            )
        sizes = {**TIMM_VITS[self.timm_model], "mlp_ratio": 4.0}
        if not self._has_sizes(sizes):
            differs = [f"{k} {getattr(self, k)} (timm: {v})" for k, v in sizes.items() if getattr(self, k) != v]
            raise ValueError(
                f"timm_model {self.timm_model!r} does not match this encoder: "
                f"{', '.join(differs)}; set timm_model: auto or null"
            )

    def _has_sizes(self, sizes: dict) -> bool:
        return self.mlp_ratio == 4.0 and all(getattr(self, k) == v for k, v in sizes.items())

    @classmethod
    def from_arch(cls, arch: str, **overrides) -> "ModelConfig":
        """The preset ``arch`` with ``overrides`` applied; unknown names and keys are an error."""
        return cls(**with_arch({"arch": arch, **overrides}))

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        """L = grid ** 2."""
        return self.grid**2
