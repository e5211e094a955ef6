"""The one table of benchmarks/gpu_all.sh: each figure a ratio of two things measured in the same run.

    python benchmarks/gpu_table.py train OUT.json -- [gpu_train.py arguments]   # run gpu_train, keep its results
    python benchmarks/gpu_table.py table DIR                                     # DIR: label.json, train_*.json

`table` reads what gpu_all.sh leaves in DIR: label.json (gpu_label.py --json), train_cpu.json and
train_gpu.json (gpu_train.py with --decode cpu / gpu, through `train`). A missing file or figure
prints as n/a with the reason; the row is there either way.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

ROWS = (  # label, what the ratio compares
    ("pipeline / SAM AMG loop", "gpu_label (c) images/s ÷ (d) images/s"),
    ("pipeline / models alone", "gpu_label (c) ÷ 1/(1/a + 1/b)"),
    ("SAM encoder: SDPA / original attention", "gpu_label, same weights, images/s"),
    ("box decoding: one call per batch / per image", "gpu_label, low-res masks/s"),
    ("SAM encoder: achieved / bf16 dense peak", "FLOPs per image × images/s ÷ the card's peak"),
    ("loader, decode cpu / c2fmae step", "gpu_train --decode cpu: loader images/s ÷ step images/s"),
    ("loader, decode gpu / c2fmae step", "gpu_train --decode gpu: loader images/s ÷ step images/s"),
    ("c2fmae step / mae step", "gpu_train --decode cpu: step time ratio"),
)


def run_train(out: Path, argv: list[str]) -> None:
    """benchmarks/gpu_train.py's main(argv), its returned results written to `out` as JSON."""
    from benchmarks import gpu_train

    result = gpu_train.main(argv)
    out.write_text(json.dumps({"argv": argv, **result}, indent=1, default=str))


def load(path: Path) -> tuple[dict | None, str]:
    """(the JSON in path, "") or (None, why not)."""
    try:
        return json.loads(path.read_text()), ""
    except FileNotFoundError:
        return None, f"no {path.name}: that run failed or was skipped"
    except ValueError as exc:
        return None, f"{path.name} is not JSON: {exc}"


def label_figures(label: dict | None, why: str) -> list[tuple[str, str]]:
    """(value, detail) for the five gpu_label rows."""
    if label is None:
        return [("n/a", why)] * 5
    rows = {row["name"]: row for row in label.get("rows", [])}

    def speed(prefix: str) -> str:
        row = next((r for name, r in rows.items() if name.startswith(prefix)), None)
        if row is None or row.get("error") or not row.get("images_s"):
            return "failed" if row else "not run"
        return f"{row['images_s']:.1f}"

    def times(key: str, detail: str) -> tuple[str, str]:
        value = label.get(key)
        return (f"{value:.2f}x", detail) if value else ("n/a", detail + " (a stage failed)")

    tflops, peak, share = label.get("encoder_tflops"), label.get("bf16_peak_tflops"), label.get("encoder_peak_share")
    flops = label.get("encoder_flops_per_image")
    if share:
        encoder = (
            f"{share:.1%}",
            f"{tflops:.0f} of {peak:.0f} TFLOP/s, {flops / 1e12:.2f} TFLOP/image, {label.get('card')}",
        )
    else:
        encoder = (
            "n/a",
            f"no bf16 peak known for {label.get('card') or 'this device'}"
            + (f"; {tflops:.3g} TFLOP/s achieved" if tflops else ""),
        )
    over_models = label.get("pipeline_over_models")
    return [
        times("pipeline_over_amg", f"(c) {speed('(c)')} vs (d) {speed('(d)')} images/s"),
        (
            f"{over_models:.0%}" if over_models else "n/a",
            f"(c) {speed('(c)')}, (a) {speed('(a)')}, (b) {speed('(b)')} images/s",
        ),
        times(
            "encoder_sdpa_over_original",
            f"{speed('(ref) SAM image encoder, SDPA')} vs {speed('(ref) SAM image encoder, original')} images/s",
        ),
        times(
            "boxes_batched_over_per_image",
            f"{speed('(ref) box decoding, one call per batch')} vs "
            f"{speed('(ref) box decoding, one call per image')} images/s",
        ),
        encoder,
    ]


def loader_figure(train: dict | None, why: str) -> tuple[str, str]:
    """loader images/s ÷ c2fmae step images/s of one gpu_train run."""
    if train is None:
        return "n/a", why
    loader, step = train.get("loader"), train.get("modes", {}).get("c2fmae")
    if not loader or not step:
        return "n/a", "no loader measurement (store stack missing?)" if step else "c2fmae step not measured"
    return (
        f"{loader['images_s'] / step['images_s']:.2f}x",
        f"{loader['images_s']:.0f} vs {step['images_s']:.0f} images/s, {loader.get('workers')} workers",
    )


def step_figure(train: dict | None, why: str) -> tuple[str, str]:
    if train is None:
        return "n/a", why
    modes = train.get("modes", {})
    if "mae" not in modes or "c2fmae" not in modes:
        return "n/a", "mae and c2fmae were not both measured"
    mae, c2f = modes["mae"]["step_s"], modes["c2fmae"]["step_s"]
    return f"{c2f / mae:.2f}x", f"{c2f * 1e3:.1f} vs {mae * 1e3:.1f} ms/step"


def table(folder: Path) -> str:
    label, label_why = load(folder / "label.json")
    cpu, cpu_why = load(folder / "train_cpu.json")
    gpu, gpu_why = load(folder / "train_gpu.json")
    skipped = folder / "train_gpu.skipped"
    if gpu is None and skipped.exists():
        gpu_why = skipped.read_text().strip()
    values = [
        *label_figures(label, label_why),
        loader_figure(cpu, cpu_why),
        loader_figure(gpu, gpu_why),
        step_figure(cpu, cpu_why),
    ]
    width = max(len(name) for name, _ in ROWS)
    lines = [f"{'figure':<{width}}  {'ratio':>8}  measured"]
    for (name, how), (value, detail) in zip(ROWS, values):
        lines.append(f"{name:<{width}}  {value:>8}  {detail} [{how}]")
    if label:
        lines.append(f"labeling: {label.get('environment', '')}")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) >= 2 and argv[0] == "train":
        rest = argv[2:]
        run_train(Path(argv[1]), rest[1:] if rest[:1] == ["--"] else rest)
        return 0
    if len(argv) == 2 and argv[0] == "table":
        print(table(Path(argv[1])))
        return 0
    print("usage: gpu_table.py train OUT.json -- [gpu_train.py arguments] | gpu_table.py table DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
