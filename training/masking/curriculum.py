"""The masking curriculum: per-sample strategy probabilities as a pure function of progress.

``weights(t) = (alpha_S, alpha_I, 1 - alpha_S - alpha_I)`` for semantic-guided, instance-guided and
random masking, with ``t`` in [0, 1] the fraction of training done (optimizer steps done / total),
never an epoch count, so a schedule carries over between run lengths.

Default "phased" schedule: semantic-guided until the first boundary, instance-guided until the
second, random after it; each hand-over is a crossfade of the given width centred on its boundary,
``linear`` or ``cosine`` in shape. ``constant`` holds ``constant_weights`` for ablations.

``mix`` says how the weights become masks: ``sample`` draws one strategy per sample with
probabilities weights(t); ``patch`` hands weights(t) to every sample, and patch masking
mixes the three sort keys per patch (``training.masking.patch_masks``).
"""

import math
from typing import Annotated, Literal

import pydantic
import torch

from plumbing.config_fields import Float, section

SHAPES = ("linear", "cosine", "constant")
MIXES = ("sample", "patch")
Weight = Annotated[float, pydantic.Strict(), pydantic.Field(ge=0)]


@section(frozen=True)
class CurriculumConfig:
    """boundaries: t of the semantic->instance and instance->random hand-overs;
    crossfades: width in t of each hand-over; shape: linear | cosine | constant;
    mix: sample (one strategy per sample) | patch (per-patch mixing of the sort keys)."""

    shape: Literal["linear", "cosine", "constant"] = "linear"
    boundaries: tuple[Float, Float] = (1 / 3, 2 / 3)
    crossfades: tuple[Weight, Weight] = (0.2, 0.2)
    constant_weights: tuple[Weight, Weight, Weight] = (1 / 3, 1 / 3, 1 / 3)
    mix: Literal["sample", "patch"] = "sample"

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> "CurriculumConfig":
        (b1, b2), (w1, w2) = self.boundaries, self.crossfades
        edges = (0.0, b1 - w1 / 2, b1 + w1 / 2, b2 - w2 / 2, b2 + w2 / 2, 1.0)
        if any(lo > hi for lo, hi in zip(edges, edges[1:])):
            raise ValueError(
                "curriculum crossfades must be ordered, non-negative and inside "
                f"[0, 1]: boundaries={self.boundaries}, crossfades={self.crossfades}"
            )
        if not math.isclose(sum(self.constant_weights), 1.0, abs_tol=1e-6):
            raise ValueError(f"constant_weights must be 3 non-negative numbers summing to 1: {self.constant_weights}")
        return self


def _ramp(t: float, centre: float, width: float, shape: str) -> float:
    """0 before the crossfade, 1 after it, linear or cosine in between."""
    if width == 0:
        return float(t >= centre)
    x = min(max((t - centre) / width + 0.5, 0.0), 1.0)
    return x if shape == "linear" else 0.5 - 0.5 * math.cos(math.pi * x)


class Curriculum:
    """Strategy weights over training progress; stateless apart from its config."""

    def __init__(self, config: CurriculumConfig | None = None) -> None:
        self.config = config or CurriculumConfig()

    def weights(self, progress: float) -> tuple[float, float, float]:
        """(alpha_S, alpha_I, alpha_R) at progress t (clamped to [0, 1]); they sum to 1."""
        cfg = self.config
        if cfg.shape == "constant":
            return cfg.constant_weights
        t = min(max(float(progress), 0.0), 1.0)
        to_instance = _ramp(t, cfg.boundaries[0], cfg.crossfades[0], cfg.shape)
        to_random = _ramp(t, cfg.boundaries[1], cfg.crossfades[1], cfg.shape)
        return 1.0 - to_instance, to_instance - to_random, to_random

    def sample(
        self, n: int, progress: float, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """mix sample: strategy [n] int64 (0 semantic, 1 instance, 2 random), drawn i.i.d. from
        weights(t) with one uniform per sample from ``generator`` (drawn on its device).
        mix patch: [n, 3] float32, weights(t) for every sample (no draw)."""
        if self.config.mix == "patch":
            return torch.tensor(self.weights(progress), device=device).expand(n, 3)
        a_s, a_i, _ = self.weights(progress)
        source = generator.device if generator is not None else device
        u = torch.rand(n, generator=generator, device=source).to(device)
        return (u >= a_s).long() + (u >= a_s + a_i).long()
