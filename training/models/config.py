"""ModelConfig: every architectural choice of the model, with MAE ViT-B/16 defaults.

Architecture presets (``ARCH_PRESETS``) fill the size fields; ``ModelConfig.from_arch`` applies
one and then any overrides. ``mode`` picks the model: ``c2f`` (cascaded decoder), ``parallel``
(three independent decoder stages, each seeing only the encoder) or ``mae`` (RGB only, random
masking, MAE's decoder).
"""

from dataclasses import dataclass, fields, replace

MODES = ("c2f", "parallel", "mae")
FUSIONS = ("tokens", "sum")
PATCH_BIAS_INITS = ("zeros", "torch")

ARCH_PRESETS: dict[str, dict] = {
    "vit_base_patch16": dict(timm_model="vit_base_patch16_224", img_size=224, patch_size=16,
                             embed_dim=768, depth=12, num_heads=12),
    "vit_large_patch16": dict(timm_model="vit_large_patch16_224", img_size=224, patch_size=16,
                              embed_dim=1024, depth=24, num_heads=16),
    # runs a training step in well under a second on two CPU cores
    "vit_tiny_cpu": dict(timm_model="vit_tiny_patch16_224", img_size=64, patch_size=8,
                         embed_dim=64, depth=4, num_heads=4, decoder_dim=64, decoder_depth=2,
                         decoder_heads=4, stage_depth=1, semantic_embed_dim=16),
}


@dataclass(frozen=True)
class ModelConfig:
    """Defaults: MAE ViT-B/16 at 224 (He et al. 2022): decoder 512 wide, 8 deep, mask ratio 0.75,
    normalised-pixel targets. ``stage_depth`` blocks per cascade stage; ``decoder_depth`` is the
    MAE-mode decoder. ``input_fusion``: ``tokens`` gives every modality its own visible tokens
    (MultiMAE-style, 3x the encoder tokens); ``sum`` adds the three embeddings of a patch into one
    token (MAE's encoder cost; needs a shared mask). ``decoder_context_embed`` (c2f, parallel)
    adds to each encoder token in the decoder's context the decoder position embedding of its
    patch and a learned embedding of the input it came from (one per input with ``tokens``, one
    for the fused token with ``sum``); ``mae`` mode keeps MAE's decoder whatever its value."""

    mode: str = "c2f"
    timm_model: str = "vit_base_patch16_224"
    img_size: int = 224
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    decoder_dim: int = 512
    decoder_depth: int = 8
    decoder_heads: int = 16
    stage_depth: int = 2
    mask_ratio: float = 0.75
    per_modality_masking: bool = False
    input_fusion: str = "tokens"
    decoder_context_embed: bool = True
    semantic_embed_dim: int = 64
    instance_embed_dim: int = 8
    norm_pix_loss: bool = True
    # "torch": PyTorch's default conv bias init, U(+-1/sqrt(3 p^2)), which MAE keeps
    patch_bias_init: str = "zeros"
    # MAE pre-training checkpoint to start a new run from (models/mae_checkpoint.py); not re-read on resume
    init_from: str | None = None
    semantic_loss_weight: float = 1.0
    instance_loss_weight: float = 1.0
    rgb_loss_weight: float = 1.0
    instance_pull_margin: float = 0.5
    instance_push_margin: float = 3.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"model mode {self.mode!r} is not one of {MODES}")
        if self.input_fusion not in FUSIONS:
            raise ValueError(f"input_fusion {self.input_fusion!r} is not one of {FUSIONS}")
        if self.patch_bias_init not in PATCH_BIAS_INITS:
            raise ValueError(f"patch_bias_init {self.patch_bias_init!r} is not one of "
                             f"{PATCH_BIAS_INITS}")
        if self.input_fusion == "sum" and self.per_modality_masking:
            raise ValueError("input_fusion 'sum' needs one shared mask (per_modality_masking off)")
        sizes = ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "decoder_dim",
                 "decoder_depth", "decoder_heads", "stage_depth", "semantic_embed_dim",
                 "instance_embed_dim")
        small = next((name for name in sizes if getattr(self, name) < 1), None)
        if small:
            raise ValueError(f"model.{small} must be >= 1, got {getattr(self, small)}")
        if self.img_size % self.patch_size or self.patch_size % 4:
            raise ValueError(f"need img_size % patch_size == 0 and patch_size % 4 == 0, got "
                             f"{self.img_size} and {self.patch_size}")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")

    @classmethod
    def from_arch(cls, arch: str, **overrides) -> "ModelConfig":
        """The preset ``arch`` with ``overrides`` applied; unknown names are an error."""
        if arch not in ARCH_PRESETS:
            raise ValueError(f"unknown arch {arch!r}; known: {sorted(ARCH_PRESETS)}")
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}")
        return replace(cls(), **{**ARCH_PRESETS[arch], **overrides})

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        """L = grid ** 2."""
        return self.grid ** 2
