"""The pre-registered decision rule of benchmarks/small_evidence.py, its tables and its plot.

The rule (fixed before any number was seen; docs/results.md states it too): rows are compared on
paired seeds (seed s of A against seed s of B: same scenes, same few-label subset, same fine-tuning
seed). With gaps g_s = A_s - B_s over n >= MIN_SEEDS seeds, mean m and sample std d:
  "A beats B" when m > 2 d (and m > 0); "B beats A" when -m > 2 d; otherwise "no difference shown".
The benchmark is calibrated only when the ceiling (supervised from scratch, all labels) beats the
floor (the better of k-NN and a linear classifier on raw pixels, per seed) by the rule *and* by
at least CALIBRATION_MARGIN points of top-1.
"""

from __future__ import annotations

import statistics

MIN_SEEDS = 3
CALIBRATION_MARGIN = 10.0  # top-1 points between ceiling and floor

PRIMARY = (("ft_all", "fine-tune top-1 %, all labels"), ("ft_few", "fine-tune top-1 %, few labels"))
SECONDARY = (
    ("knn", "k-NN top-1 %"),
    ("linear", "linear top-1 %"),
    ("dense_miou", "dense mIoU"),
)


def paired_verdict(a: list[float], b: list[float], name_a: str, name_b: str) -> dict:
    """The rule on per-seed scores a[s], b[s] (seed order): gaps, mean, std and the verdict text."""
    gaps = [x - y for x, y in zip(a, b, strict=True)]
    if len(gaps) < MIN_SEEDS:
        return {"gaps": gaps, "mean": None, "std": None, "verdict": f"too few seeds (rule needs {MIN_SEEDS})"}
    mean, std = statistics.mean(gaps), statistics.stdev(gaps)
    if mean > 0 and mean > 2 * std:
        verdict = f"{name_a} beats {name_b}"
    elif mean < 0 and -mean > 2 * std:
        verdict = f"{name_b} beats {name_a}"
    else:
        verdict = "no difference shown"
    return {"gaps": gaps, "mean": mean, "std": std, "verdict": verdict}


def calibrated(ceiling: list[float], floor: list[float]) -> tuple[bool, dict]:
    """(True when the ceiling is well above the floor, the rule's record of ceiling vs floor)."""
    record = paired_verdict(ceiling, floor, "ceiling", "floor")
    ok = record["verdict"] == "ceiling beats floor" and record["mean"] >= CALIBRATION_MARGIN
    return ok, record


def summary_table(per_seed: dict[str, list[dict]], keys, labels: dict[str, str]) -> str:
    """Markdown: one row per method (its label), mean ± std over seeds per metric; '—' where a row
    has no such metric."""
    heads = [title for _, title in keys]
    lines = ["| row | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    for row, runs in per_seed.items():
        cells = []
        for key, _ in keys:
            values = [r[key] for r in runs if r.get(key) is not None]
            cells.append(_mean_std(values, key) if values else "—")
        lines.append(f"| {labels.get(row, row)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict_table(verdicts: list[dict]) -> str:
    """Markdown: one line per (comparison, metric): per-seed gaps, mean ± std, the rule's verdict."""
    if not verdicts:
        return "No comparison: the run stopped before the rows the rule compares."
    lines = ["| comparison | metric | gaps per seed | mean gap ± std | verdict |", "|---|---|---|---|---|"]
    for v in verdicts:
        gaps = ", ".join(f"{g:+.1f}" for g in v["gaps"])
        spread = "—" if v["mean"] is None else f"{v['mean']:+.1f} ± {v['std']:.1f}"
        lines.append(f"| {v['a']} vs {v['b']} | {v['metric']} | {gaps} | {spread} | **{v['verdict']}** |")
    return "\n".join(lines)


def _mean_std(values: list[float], key: str) -> str:
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.3f} ± {std:.3f}" if key == "dense_miou" else f"{mean:.1f} ± {std:.1f}"


def plot(result: dict, path) -> None:
    """One panel per metric: every row's per-seed values as dots and mean ± std as a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = PRIMARY + SECONDARY
    rows = list(result["per_seed"])
    fig, axes = plt.subplots(1, len(keys), figsize=(3.3 * len(keys), 3.6))
    for ax, (key, title) in zip(axes, keys):
        for x, row in enumerate(rows):
            values = [r[key] for r in result["per_seed"][row] if r.get(key) is not None]
            if not values:
                continue
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            ax.bar(x, statistics.mean(values), yerr=std, capsize=3, color=_colour(row), alpha=0.6)
            ax.scatter([x] * len(values), values, s=10, color="black", zorder=3)
        ax.set_xticks(range(len(rows)), [result["labels"].get(r, r) for r in rows], rotation=60, ha="right", fontsize=7)
        ax.set_title(title, fontsize=8)
    fig.suptitle(
        f"small_evidence ({result['preset']}, {result['stage']}, {result['seeds']} paired seeds; "
        "bars: mean ± std, dots: seeds)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _colour(row: str) -> str:
    return {"pixels": "#999999", "supervised": "#2ca02c"}.get(row, "#4c72b0")
