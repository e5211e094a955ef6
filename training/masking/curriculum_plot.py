"""The curriculum as a picture: α_S(t), α_I(t) and the random share 1 - α_S - α_I over a run's
optimizer steps, as the engine writes it to RUN/curriculum.png when a run starts.

Drawn with matplotlib's object API (a ``Figure``, no pyplot): no global state, no display needed.
"""

from __future__ import annotations

import io
from pathlib import Path

from plumbing.files import atomic_write
from training.masking.curriculum import Curriculum

POINTS = 401  # samples of t in [0, 1]: crossfades of width 0.01 still show as slopes
LABELS = ("α_S  semantic-guided", "α_I  instance-guided", "1 − α_S − α_I  random")
COLOURS = ("tab:blue", "tab:orange", "tab:green")


def save_curriculum_plot(
    curriculum: Curriculum, path: str | Path, total_steps: int, stop_step: int | None = None
) -> Path:
    """Write the PNG (700 × 350 px) of `curriculum` over `total_steps` optimizer steps to `path`;
    a dashed line marks `stop_step` when the run stops earlier (--max-steps). Returns the path."""
    figure = curriculum_figure(curriculum, total_steps, stop_step)
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    path = Path(path)
    atomic_write(path, png.getvalue())
    return path


def curriculum_figure(curriculum: Curriculum, total_steps: int, stop_step: int | None = None):
    """A matplotlib Figure: one line per strategy weight against the optimizer step (bottom axis)
    and progress t = step / total_steps (top axis)."""
    from matplotlib.figure import Figure  # only the engine's start and the tests draw

    cfg = curriculum.config
    ts = [i / (POINTS - 1) for i in range(POINTS)]
    curves = list(zip(*(curriculum.weights(t) for t in ts)))
    figure = Figure(figsize=(7, 3.5), layout="constrained")
    ax = figure.add_subplot()
    steps = [t * total_steps for t in ts]
    for curve, label, colour in zip(curves, LABELS, COLOURS):
        ax.plot(steps, curve, label=label, color=colour, linewidth=2)
    if stop_step is not None and stop_step < total_steps:
        ax.axvline(stop_step, color="grey", linestyle="--", linewidth=1, label=f"this run stops at {stop_step}")
    ax.set_xlim(0, total_steps)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("probability per sample" if cfg.mix == "sample" else "weight of each patch's sort key")
    ax.secondary_xaxis("top", functions=(lambda s: s / total_steps, lambda t: t * total_steps)).set_xlabel("progress t")
    ax.grid(alpha=0.3)
    ax.legend(loc="center right", fontsize="small")
    ax.set_title(f"masking curriculum: {cfg.shape}, mix {cfg.mix}, {total_steps} steps", fontsize="medium")
    return figure
