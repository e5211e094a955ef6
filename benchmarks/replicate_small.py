"""A small, honest side-by-side of C2FMAE, its ablations and MAE on procedurally generated scenes.

Pipeline (CPU, offline): scenes with exact ground truth (benchmarks/scenes.py) -> the train split
labeled by c2f-label's `classic` backend, and the exact ground truth kept as a second store ->
tiny ViTs pre-trained with one budget (same steps, batch and lr schedule) as
  mae, parallel, c2fmae, c2fmae-nocurr (random masks throughout: curriculum.shape=constant,
  constant_weights=[0,0,1]) on the classic pseudo-labels, and c2fmae-gt on the exact ground truth,
  plus `random-init` (no pre-training) as the floor;
-> every encoder exported and scored by `c2f-train eval`'s k-NN, linear probe and dense probe
(trained and scored on the exact ground-truth semantic maps), over several seeds, mean +- std.

    .venv/bin/python benchmarks/replicate_small.py [--quick] [--seeds 3] [--out DIR] [--size KEY=N ...]

--quick: about 5 minutes on 2 cores (the CI smoke test); the default is sized to stay under 60.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without install

from benchmarks.scenes import load_sources, write_split  # noqa: E402
from benchmarks.small_evidence import foreground_iou  # noqa: E402
from training.config import load_config  # noqa: E402
from training.engine import train  # noqa: E402
from training.eval import EvalConfig, run_eval  # noqa: E402
from training.export import export_encoder, write_encoder  # noqa: E402
from training.models.factory import build_model  # noqa: E402

# name -> (config, label store, extra --set overrides)
METHODS = {
    "mae": ("mae_tiny_cpu", "classic", []),
    "parallel": ("parallel_tiny_cpu", "classic", []),
    "c2fmae": ("c2fmae_tiny_cpu", "classic", []),
    "c2fmae-nocurr": (
        "c2fmae_tiny_cpu",
        "classic",
        ["curriculum.shape=constant", "curriculum.constant_weights=[0,0,1]"],
    ),
    "c2fmae-gt": ("c2fmae_tiny_cpu", "gt", []),
}
PRESETS = {  # scenes, pre-training budget, probe budget
    "quick": dict(
        train=64, val=40, size=32, epochs=4, batch=16, warmup=1, linear_epochs=90, dense_epochs=60, probe_batch=16
    ),
    "full": dict(
        train=1200, val=400, size=32, epochs=20, batch=32, warmup=2, linear_epochs=90, dense_epochs=60, probe_batch=64
    ),
}
METRICS = (("knn", "top1"), ("linear", "top1"), ("dense", "miou"), ("dense", "pixel_accuracy"))


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    preset = {**PRESETS["quick" if args.quick else "full"], **_sizes(args.size)}
    out = Path(args.out or ROOT / "runs" / ("replicate_small_quick" if args.quick else "replicate_small"))
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data = _data(out, preset, args.data_seed)
    timings = {"data_and_labels_s": time.perf_counter() - t0}
    scores: dict[str, list[dict]] = {}
    for seed in range(args.seeds):
        for method in ["random-init", *METHODS]:
            t = time.perf_counter()
            encoder = _encoder(method, seed, out, data, preset)
            scores.setdefault(method, []).append(_evaluate(encoder, data, preset, seed, out))
            timings[f"{method}/seed{seed}_s"] = time.perf_counter() - t
            print(
                f"[{time.perf_counter() - t0:6.0f} s] {method} seed {seed}: "
                + ", ".join(f"{k} {v:.3f}" for k, v in scores[method][-1].items()),
                flush=True,
            )
    result = {
        "preset": "quick" if args.quick else "full",
        **preset,
        "seeds": args.seeds,
        "summary": _summarise(scores),
        "per_seed": scores,
        "timings_s": timings,
        "total_s": time.perf_counter() - t0,
        "label_agreement": data["agreement"],
    }
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    table = format_table(result)
    (out / "results.md").write_text(table + "\n")
    _plot(result, out / "results.png")
    print(table)
    return result


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes for a ~5 minute smoke run")
    p.add_argument("--seeds", type=int, default=3, help="pre-training + probe seeds (default 3)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the generated scenes")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--out", default=None, help="work and result folder (default runs/replicate_small[_quick])")
    p.add_argument(
        "--size",
        nargs="*",
        default=[],
        metavar="KEY=N",
        help=f"override preset numbers, e.g. --size train=480 epochs=4 (keys: {', '.join(PRESETS['full'])})",
    )
    return p


def _sizes(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in PRESETS["full"] or not value.isdigit():
            raise SystemExit(f"--size expects KEY=N with KEY one of {', '.join(PRESETS['full'])}, got {item!r}")
        out[key] = int(value)
    return out


def _data(out: Path, preset: dict, seed: int) -> dict:
    """Scenes + GT stores for both splits, and the classic pseudo-labels of the train split."""
    from labeling.config import LabelConfig
    from labeling.job import run_label_job

    sources = load_sources()
    train_images, gt_train = write_split(out / "data", "train", preset["train"], preset["size"], seed, sources)
    val_images, gt_val = write_split(out / "data", "val", preset["val"], preset["size"], seed, sources)
    classic = out / "data" / "stores" / "classic_train"
    run_label_job(
        train_images, classic, LabelConfig(canvas=preset["size"], shard_size=128, workers=1), show_progress=False
    )
    return {
        "train": train_images,
        "val": val_images,
        "gt": gt_train,
        "gt_val": gt_val,
        "classic": classic,
        "agreement": {"foreground_iou": foreground_iou(classic, gt_train)},
    }


def _encoder(method: str, seed: int, out: Path, data: dict, preset: dict) -> Path:
    """Pre-train (unless random-init) and export; returns the export directory."""
    path = out / "encoders" / f"{method}-seed{seed}"
    if (path / "config.json").exists():
        return path
    config, labels, extra = METHODS.get(method, ("c2fmae_tiny_cpu", "classic", []))
    overrides = [
        f"engine.seed={seed}",
        "data.num_workers=0",
        "engine.tensorboard=false",
        "engine.progress=false",
        "engine.image_every=0",
        "engine.log_every=50",
        "engine.checkpoint_every=100000",
        f"optim.epochs={preset['epochs']}",
        f"optim.warmup_epochs={preset['warmup']}",
        f"optim.batch_size={preset['batch']}",
        f"model.img_size={preset['size']}",
        f"data.img_size={preset['size']}",
        *extra,
    ]
    cfg = load_config(config, overrides)
    run_dir = out / "runs" / f"{method}-seed{seed}"
    if method == "random-init":
        _export_untrained(cfg, seed, path)
    else:
        train(cfg, data[labels], data["train"], run_dir)
        export_encoder(run_dir, path)
    return path


def _export_untrained(cfg, seed: int, path: Path) -> None:
    torch.manual_seed(seed)
    model = build_model(cfg.model, num_classes=1)
    write_encoder(model, path, cfg.model.img_size, cfg.data.mean, cfg.data.std, model_mode=cfg.model.mode)


def _evaluate(encoder: Path, data: dict, preset: dict, seed: int, out: Path) -> dict:
    overrides = [
        f"run.seed={seed}",
        "run.num_workers=0",
        "run.progress=false",
        "run.feature_batch=128",
        f"linear.epochs={preset['linear_epochs']}",
        f"linear.batch_size={preset['probe_batch']}",
        f"dense.epochs={preset['dense_epochs']}",
        f"dense.batch_size={preset['probe_batch']}",
        "dense.lr=1e-2",
        f"dense.train_labels={data['gt']}",
        f"dense.val_labels={data['gt_val']}",
    ]
    cfg = load_config(None, overrides, config_class=EvalConfig)
    scores = {}
    for protocol in ("knn", "linear", "dense"):
        result = run_eval(protocol, encoder, data["train"], data["val"], out / "eval" / encoder.stem, cfg)
        scores.update(
            {f"{protocol}_{k}": v for k, v in result["metrics"].items() if k in ("top1", "miou", "pixel_accuracy")}
        )
    return scores


def _summarise(scores: dict[str, list[dict]]) -> dict:
    """{method: {metric: [mean, std]}} (std over seeds, 0 with one seed)."""
    summary = {}
    for method, runs in scores.items():
        summary[method] = {}
        for key in runs[0]:
            values = [r[key] for r in runs]
            summary[method][key] = [statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0]
    return summary


def format_table(result: dict) -> str:
    """Markdown table: one row per method, mean ± std per metric."""
    keys = [f"{p}_{m}" for p, m in METRICS]
    heads = ["k-NN top-1 %", "linear top-1 %", "dense mIoU", "dense pixel acc."]
    lines = ["| method | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    for method, metrics in result["summary"].items():
        cells = []
        for key in keys:
            mean, std = metrics[key]
            cells.append(f"{mean:.1f} ± {std:.1f}" if key.endswith("top1") else f"{mean:.3f} ± {std:.3f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(result["summary"])
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.2))
    for ax, (protocol, metric) in zip(axes, METRICS):
        mean, std = zip(*(result["summary"][m][f"{protocol}_{metric}"] for m in methods))
        ax.bar(range(len(methods)), mean, yerr=std, capsize=3, color="#4c72b0")
        ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{protocol} {metric}", fontsize=9)
    fig.suptitle(f"replicate_small ({result['preset']}, {result['seeds']} seeds, mean ± std)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
