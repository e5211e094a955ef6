"""A run's losses as a picture, RUN/losses.png, drawn from RUN/log.jsonl when a run ends or stops:
- the total and each target's loss against the optimizer step (log scale);
- with ``engine.loss_probe``, each loss's share of the gradient at the encoder output
  (``grad_share/<target>``) and each target's loss per masking strategy
  (``loss_<target>/<strategy>_masks``), the panels only a probed run has.

Drawn with matplotlib's object API (a ``Figure``, no pyplot), as the curriculum is.
"""

from __future__ import annotations

import io
from pathlib import Path

from plumbing.files import atomic_write
from training.logs import read_records
from training.masking.patch_masks import STRATEGY_NAMES

TARGET_COLOURS = {"semantic": "tab:blue", "instance": "tab:orange", "rgb": "tab:green"}  # the cascade's order
STRATEGY_STYLES = dict(zip(STRATEGY_NAMES, ("-", "--", ":")))


def save_loss_plot(log: str | Path, path: str | Path) -> Path | None:
    """Write the PNG of the records in ``log`` to ``path``; None (nothing written) when the log
    holds no record. Returns the path."""
    records = read_records(Path(log)) if Path(log).is_file() else []
    if not records:
        return None
    png = io.BytesIO()
    loss_figure(records).savefig(png, format="png", dpi=100)
    atomic_write(Path(path), png.getvalue())
    return Path(path)


def loss_figure(records: list[dict]):
    """A matplotlib Figure, one panel per group of series the records hold (see module docstring)."""
    from matplotlib.figure import Figure  # only the end of a run and the tests draw

    keys = sorted({k for r in records for k, v in r.items() if isinstance(v, (int, float))}, key=_cascade_order)
    panels = [
        (_losses, ["loss", *(k for k in keys if k.startswith("loss_") and "/" not in k)]),
        (_grad_shares, [k for k in keys if k.startswith("grad_share/")]),
        (_strategy_losses, [k for k in keys if k.startswith("loss_") and k.endswith("_masks")]),
    ]
    panels = [(draw, series) for draw, series in panels if series]
    figure = Figure(figsize=(7, 2.6 * len(panels)), layout="constrained")
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (draw, series) in zip(axes, panels):
        draw(ax, records, series)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize="x-small", ncols=3)
    axes[-1].set_xlabel("optimizer step")
    return figure


def _parts(key: str) -> tuple[str, str]:
    """A series' (target, strategy): ``loss_<t>/<s>_masks`` -> (t, s); ``loss_<t>`` and
    ``grad_share/<t>`` -> (t, ""); ``loss`` -> ("loss", "")."""
    target, _, strategy = key.removeprefix("grad_share/").removeprefix("loss_").partition("/")
    return target, strategy.removesuffix("_masks")


def _cascade_order(key: str) -> tuple:
    """Sort key: the series' target in the cascade's order, then its masking strategy."""
    target, strategy = _parts(key)
    targets, strategies = list(TARGET_COLOURS), list(STRATEGY_STYLES)
    rank = (
        targets.index(target) if target in targets else -1,
        strategies.index(strategy) if strategy in strategies else -1,
    )
    return *rank, key


def _line(ax, records: list[dict], key: str, **style) -> None:
    points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    if points:
        ax.plot(*zip(*points), linewidth=1.5, **style)


def _losses(ax, records: list[dict], keys: list[str]) -> None:
    for key in keys:
        target = _parts(key)[0]
        label = "total (weighted)" if key == "loss" else target
        _line(ax, records, key, label=label, color=TARGET_COLOURS.get(target, "black"))
    ax.set_yscale("log")
    ax.set_ylabel("loss")
    ax.set_title("losses per target", fontsize="medium")


def _grad_shares(ax, records: list[dict], keys: list[str]) -> None:
    for key in keys:
        target = _parts(key)[0]
        _line(ax, records, key, label=target, color=TARGET_COLOURS.get(target))
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("share of ‖∂L/∂latent‖")
    ax.set_title("each weighted loss's share of the gradient at the encoder output", fontsize="medium")


def _strategy_losses(ax, records: list[dict], keys: list[str]) -> None:
    for key in keys:
        target, strategy = _parts(key)
        style = dict(color=TARGET_COLOURS.get(target), linestyle=STRATEGY_STYLES.get(strategy, "-"))
        _line(ax, records, key, label=f"{target}, {strategy} masks", **style)
    ax.set_yscale("log")
    ax.set_ylabel("loss")
    ax.set_title("each target's loss by the masking strategy of its samples", fontsize="medium")
