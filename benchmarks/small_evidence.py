"""Small-scale evidence: a benchmark whose calibration rows are far apart, so it can rank methods.

Scenes (benchmarks/shapes.py): 32 px, six flat-coloured shape classes, one or two shapes on a
low-contrast photo background, exact semantic + instance ground truth, image class = the main
shape's class. Encoders: a tiny ViT at patch 4 (8 x 8 tokens, one label cell per patch).

Rows, every one on the same paired seeds (scenes fixed; seed s = pre-training, fine-tuning and
few-label-subset seed):
  pixels       the floor: k-NN and a linear classifier on the raw pixels (standing in for
               fine-tuning in the fine-tune columns), a per-patch linear probe on raw 4x4 patches;
               calibration compares the ceiling with the better of the pixel k-NN and linear
  supervised   the ceiling: the same encoder from scratch, all labels, for the pre-training +
               fine-tuning budget together (fine-tune column, all labels)
  random-init  no pre-training, then the same fine-tuning/probes as every pre-trained row
  mae          RGB MAE
  (grid only) parallel, c2fmae, c2fmae-nocurr on the classic pseudo-labels (c2f-label `classic`),
               c2fmae-gt on the exact ground truth (an oracle), and any --variant rows.
Primary metric: fine-tuning top-1 (`c2f-train eval --protocol finetune`, crop + flip augmentation)
with all labels and with `few` labels per class. Secondary: frozen k-NN / linear on average-pooled
tokens and the dense probe (exact ground truth), beside the pixel row.

The rule is benchmarks/evidence_report.py's (paired seeds, mean gap > 2 std). Stages:
  --stage pilot   pixels and supervised first: stops there when the ceiling is not well above
                  the floor; then random-init and mae: GO when mae beats random-init in a
                  fine-tune column
  --stage grid    the pilot, then (only on GO) the other rows; --force-grid runs past every gate,
                  and the decision line says so

    python benchmarks/small_evidence.py [--quick | --preset cpu|cpu-long|gpu] [--stage pilot|grid] [--seeds 3]
        [--out DIR] [--variant NAME=BASE:KEY=VALUE,...] [--force-grid] [--predict-gpu]
        [--only-seed S] [--only-row ROW]   fill the cache only (processes side by side), no tables

Encoders and scores are cached under --out, keyed by the resolved configs and the code version
(a hash of training/, datasets_spec/, labeling/ and the scene generators, and PROTOCOL): a rerun
after a code fix recomputes, a rerun of the same code reuses.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without install

from benchmarks import evidence_report as report  # noqa: E402
from benchmarks.scenes import load_sources  # noqa: E402
from benchmarks.shapes import CLASSES, write_shape_split  # noqa: E402
from training.config import load_config, to_dict  # noqa: E402
from training.engine import train  # noqa: E402
from training.eval import EvalConfig, run_evals  # noqa: E402
from training.export import export_encoder, write_encoder  # noqa: E402
from training.logs import read_records  # noqa: E402
from training.models.factory import build_model  # noqa: E402

PROTOCOL = 1  # bump when this script changes what a cached encoder or score means
CODE_PATHS = ("training", "datasets_spec", "labeling", "benchmarks/scenes.py", "benchmarks/shapes.py")

# name -> (config, labels: "gt" | "classic", extra --set overrides). mae reads no labels.
PRETRAINED = {
    "mae": ("mae_tiny_cpu", "gt", []),
    "parallel": ("parallel_tiny_cpu", "classic", []),
    "c2fmae": ("c2fmae_tiny_cpu", "classic", []),
    "c2fmae-nocurr": (
        "c2fmae_tiny_cpu",
        "classic",
        ["curriculum.shape=constant", "curriculum.constant_weights=[0,0,1]"],
    ),
    "c2fmae-gt": ("c2fmae_tiny_cpu", "gt", []),
}
CALIBRATION_ROWS = ("pixels", "supervised")  # run first: a benchmark that fails them stops there
PILOT_ROWS = (*CALIBRATION_ROWS, "random-init", "mae")
GRID_ROWS = ("parallel", "c2fmae", "c2fmae-nocurr", "c2fmae-gt")
# The input-shift switches (docs/training.md), run in every grid: name -> (base row, overrides).
# 16 = MAE's visible tokens (64 patches at mask ratio 0.75), so c2fmae-budget16's encoder costs an
# MAE encoder's. More rows (e.g. loss weights) come from --variant NAME=BASE:KEY=VALUE,...
SWITCH_ROWS: dict[str, tuple[str, list[str]]] = {
    "c2fmae-budget16": ("c2fmae", ["model.token_budget=16"]),
    "c2fmae-drop50": ("c2fmae", ["model.modality_dropout=0.5"]),
}
LABELS = {
    "pixels": "pixels (floor)",
    "supervised": "supervised from scratch (ceiling)",
    "c2fmae-gt": "c2fmae-gt (oracle: exact labels)",
}
MODEL = ["model.arch=vit_tiny_cpu", "model.img_size=32", "model.patch_size=4", "data.img_size=32"]
# the cpu preset: about 15 min for the pilot on 2 cores
CPU = dict(
    train=2000,
    val=500,
    few=50,
    batch=64,
    pretrain_epochs=24,
    ft_epochs=6,
    few_epochs=30,
    linear_epochs=50,
    dense_epochs=30,
    device="cpu",
    model=[],
)
PRESETS = {
    # train/val scenes, few labels per class, pre-training epochs, fine-tuning epochs (all / few labels)
    "quick": dict(
        train=36,
        val=12,
        few=2,
        batch=12,
        pretrain_epochs=1,
        ft_epochs=1,
        few_epochs=2,
        linear_epochs=5,
        dense_epochs=3,
        device="cpu",
        model=[],
    ),
    "cpu": CPU,
    # four times the cpu preset's epochs: what an in-memory supervised run of the same ViT needed to
    # clear the calibration (84.4 % at 3,720 steps against 62 %); about an hour on 2 idle cores
    "cpu-long": {**CPU, "pretrain_epochs": 96, "ft_epochs": 24, "few_epochs": 120},
    "gpu": dict(
        train=20000,
        val=2000,
        few=50,
        batch=256,
        pretrain_epochs=400,
        ft_epochs=100,
        few_epochs=400,
        linear_epochs=90,
        dense_epochs=60,
        device="cuda",
        model=[
            "model.embed_dim=192",
            "model.depth=12",
            "model.num_heads=3",
            "model.decoder_dim=128",
            "model.decoder_heads=4",
            "model.semantic_embed_dim=32",
        ],
    ),
}
FINETUNE = [  # one recipe for every row (pre-registered)
    "finetune.augment=crop_flip",
    "finetune.crop_padding=4",
    "finetune.auto_augment=null",
    "finetune.reprob=0.0",
    "finetune.mixup=0.0",
    "finetune.cutmix=0.0",
    "finetune.smoothing=0.1",
    "finetune.blr=2.0e-3",
    "finetune.layer_decay=0.75",
    "finetune.drop_path=0.1",
    "finetune.weight_decay=0.05",
    "finetune.eval_every_epochs=0",
    "finetune.checkpoint_every=1000000",
]


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    name = "quick" if args.quick else args.preset
    preset = PRESETS[name]
    if args.predict_gpu:
        from benchmarks.evidence_cost import predict

        result = predict(PRESETS["gpu"], MODEL + PRESETS["gpu"]["model"], args.seeds, switch_configs())
        print(json.dumps(result, indent=2))
        return result
    out = Path(args.out or ROOT / "runs" / f"small_evidence_{name}")
    torch.set_num_threads(args.threads)
    bench = Bench(out, preset, name, _variants(args.variant), args.data_seed)
    if args.only_seed is not None or args.only_row is not None:
        seeds = [args.only_seed] if args.only_seed is not None else list(range(args.seeds))
        return bench.fill(args.stage, seeds, args.only_row)
    return bench.run(args.stage, args.seeds, args.force_grid, argv if argv is not None else sys.argv[1:])


class Bench:
    """One benchmark folder: data, cached encoders and scores, the rows' per-seed numbers."""

    def __init__(self, out: Path, preset: dict, name: str, variants: dict, data_seed: int):
        self.out, self.preset, self.name, self.variants = out, preset, name, variants
        self.data_seed = data_seed
        self.code = code_version()
        self.per_seed: dict[str, list[dict]] = {}
        self.pretrain: dict[str, dict] = {}  # "row/seedS" -> steps, final losses, seconds
        self.walls: dict[str, float] = {}
        self.spent = 0.0  # compute seconds of the row and seed being scored

    def fill(self, stage: str, seeds: list[int], only_row: str | None = None) -> dict:
        """Compute (and cache) the stage's rows, or only `only_row`, for `seeds`: no gate, no
        tables. Processes filling different seeds or rows run side by side; a plain run afterwards
        reads their cache."""
        rows = PILOT_ROWS + ((*GRID_ROWS, *SWITCH_ROWS, *self.variants) if stage == "grid" else ())
        if only_row is not None and only_row not in rows:
            raise SystemExit(f"--only-row {only_row}: not a row of the {stage} stage ({', '.join(rows)})")
        self.data = self._data()
        if stage == "grid":
            self.data.update(self._classic())
        for row in rows if only_row is None else [only_row]:
            self._row(row, seeds)
        return {"per_seed": self.per_seed, "pretrain": self.pretrain}

    def run(self, stage: str, seeds: int, force: bool, argv: list[str]) -> dict:
        t0, load0 = time.perf_counter(), os.getloadavg()
        self.data = self._data()
        self.walls["data_s"] = time.perf_counter() - t0
        for row in CALIBRATION_ROWS:
            self._row(row, range(seeds))
        ceiling = [r["ft_all"] for r in self.per_seed["supervised"]]
        floor = [max(r["ft_all"], r["knn"]) for r in self.per_seed["pixels"]]  # the better pixel classifier
        ok, calibration = report.calibrated(ceiling, floor)
        if ok or force:
            for row in PILOT_ROWS[len(CALIBRATION_ROWS) :]:
                self._row(row, range(seeds))
        result = self._decide(stage, seeds, force, ok, calibration)
        if result["go_grid"]:
            self.data.update(self._classic())
            for row in (*GRID_ROWS, *SWITCH_ROWS, *self.variants):
                self._row(row, range(seeds))
        result.update(self._verdicts(result["go_grid"]))
        result.update(
            per_seed=self.per_seed,
            pretrain=self.pretrain,
            walls_s={**self.walls, "total_s": time.perf_counter() - t0},
            load_average={"start": load0, "end": os.getloadavg()},
            command=["python", "benchmarks/small_evidence.py", *argv],
            code_version=self.code,
            git=_git_describe(),
            threads=torch.get_num_threads(),
        )
        return self._write(result)

    # ------------------------------------------------------------------ data
    def _data(self) -> dict:
        """Scenes and their exact ground truth (cached by sizes, data seed and code version)."""
        p = self.preset
        root = self.out / f"data-{_key(p['train'], p['val'], self.data_seed, self.code)}"
        with _exclusive(self.out):  # --only-seed processes started together build the data once
            return self._scenes(root, p)

    def _scenes(self, root: Path, p: dict) -> dict:
        if not (root / "done").is_file():
            shutil.rmtree(root, ignore_errors=True)
            photos = load_sources()[2]
            write_shape_split(root, "train", p["train"], 32, self.data_seed, photos)
            write_shape_split(root, "val", p["val"], 32, self.data_seed, photos)
            (root / "done").write_text("ok\n")
        return {
            "root": root,
            "train": root / "images" / "train",
            "val": root / "images" / "val",
            "gt": root / "stores" / "gt_train",
            "gt_val": root / "stores" / "gt_val",
        }

    def _classic(self) -> dict:
        """The train split labeled by c2f-label's classic backend, and its foreground agreement."""
        with _exclusive(self.out):
            return self._classic_labels()

    def _classic_labels(self) -> dict:
        from labeling.config import LabelConfig
        from labeling.job import run_label_job

        store = self.data["root"] / "stores" / "classic_train"
        if not (self.data["root"] / "classic_done").is_file():
            t = time.perf_counter()
            shutil.rmtree(store, ignore_errors=True)
            run_label_job(
                self.data["train"], store, LabelConfig(canvas=32, shard_size=256, workers=1), show_progress=False
            )
            (self.data["root"] / "classic_done").write_text(f"{time.perf_counter() - t:.1f}\n")
        return {"classic": store, "agreement": foreground_iou(store, self.data["gt"])}

    def _few(self, seed: int) -> Path:
        """`few` training images per class, drawn with `seed` (the same subset for every row)."""
        folder = self.data["root"] / "images" / f"few{self.preset['few']}-seed{seed}"
        with _exclusive(self.out):
            if not folder.is_dir():
                self._draw_few(folder, seed)
        return folder

    def _draw_few(self, folder: Path, seed: int) -> None:
        rng = np.random.default_rng([seed, 7])
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for c in range(len(CLASSES)):
            files = sorted((self.data["train"] / str(c)).glob("*.png"))
            (tmp / str(c)).mkdir(parents=True)
            for f in rng.choice(files, size=min(self.preset["few"], len(files)), replace=False):
                shutil.copyfile(f, tmp / str(c) / f.name)
        tmp.rename(folder)

    # ------------------------------------------------------------------ rows
    def _row(self, row: str, seeds) -> None:
        for seed in seeds:
            self.spent = 0.0
            if row == "pixels":
                from benchmarks.evidence_pixels import pixel_scores

                scores = self._cached(
                    ("pixels", seed), lambda s=seed: pixel_scores(self.data, self._few(s), self._eval_cfg(s, None), s)
                )
            elif row == "supervised":
                scores = self._supervised(seed)
            else:
                scores = self._pretrained_row(row, seed)
            self.per_seed.setdefault(row, []).append(scores)
            self.walls[f"{row}/seed{seed}_s"] = self.spent  # compute time, cached parts included
            shown = ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if isinstance(v, float))
            print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {row} seed {seed}: {shown}", flush=True)

    def _pretrained_row(self, row: str, seed: int) -> dict:
        encoder, key = self._encoder(row, seed)
        cfg = self._eval_cfg(seed, self.preset["ft_epochs"])
        few_cfg = self._eval_cfg(seed, self.preset["few_epochs"])
        scores = {}
        scores["ft_all"] = self._finetune(encoder, key, self.data["train"], cfg, "all")
        scores["ft_few"] = self._finetune(encoder, key, self._few(seed), few_cfg, "few")

        def frozen():
            results = run_evals(["knn", "linear", "dense"], encoder, self.data["train"], self.data["val"], None, cfg)
            return {
                "knn": results[0]["metrics"]["top1"],
                "linear": results[1]["metrics"]["top1"],
                "dense_miou": results[2]["metrics"]["miou"],
            }

        scores.update(self._cached(("frozen", key, to_dict(cfg)), frozen))
        return scores

    def _supervised(self, seed: int) -> dict:
        """The ceiling: random init fine-tuned on all labels for pre-training + fine-tuning epochs."""
        encoder, key = self._encoder("random-init", seed)
        epochs = self.preset["pretrain_epochs"] + self.preset["ft_epochs"]
        return {"ft_all": self._finetune(encoder, key, self.data["train"], self._eval_cfg(seed, epochs), "ceiling")}

    def _finetune(self, encoder: Path, key: str, train_dir: Path, cfg: EvalConfig, tag: str) -> float:
        def run():
            out = self.out / "finetune" / f"{encoder.stem}-{tag}-{_key(to_dict(cfg))}"
            shutil.rmtree(out, ignore_errors=True)
            result = run_evals(["finetune"], encoder, train_dir, self.data["val"], out, cfg)[0]
            shutil.rmtree(out / "finetune", ignore_errors=True)  # checkpoints: not needed once scored
            return {"top1": result["metrics"]["top1"]}

        return self._cached(("finetune", key, str(train_dir.name), to_dict(cfg)), run)["top1"]

    def _encoder(self, row: str, seed: int) -> tuple[Path, str]:
        """(encoder directory, its cache key): pre-trained and exported, or the untrained random init."""
        cfg, labels = self._pretrain_cfg(row, seed)
        key = _key(to_dict(cfg), labels, self.code, self.data["root"].name, row == "random-init")
        path = self.out / "encoders" / f"{row}-seed{seed}-{key}"  # timm's layout: a directory
        record = path.with_name(path.name + ".run.json")
        if (path / "config.json").is_file() and record.is_file():
            self.pretrain[f"{row}/seed{seed}"] = info = json.loads(record.read_text())
            self.spent += info["seconds"]
            return path, key
        t = time.perf_counter()
        path.parent.mkdir(parents=True, exist_ok=True)
        if row == "random-init":
            torch.manual_seed(seed)
            model = build_model(cfg.model, num_classes=len(CLASSES) + 1)
            write_encoder(model, path, cfg.model.img_size, cfg.data.mean, cfg.data.std, model_mode=cfg.model.mode)
            info = {"steps": 0}
        else:
            run_dir = self.out / "runs" / f"{row}-seed{seed}-{key}"
            shutil.rmtree(run_dir, ignore_errors=True)
            summary = train(cfg, self.data[labels], self.data["train"], run_dir)
            export_encoder(run_dir, path)
            info = {"steps": summary["step"], "final": _last_losses(run_dir), "images_per_s": summary["images_per_s"]}
            for checkpoint in run_dir.glob("*.pt"):  # the log and its pictures stay: small
                checkpoint.unlink()
        info.update(seconds=time.perf_counter() - t, load_average=os.getloadavg()[0])
        record.write_text(json.dumps(info) + "\n")
        self.pretrain[f"{row}/seed{seed}"] = info
        self.spent += info["seconds"]
        return path, key

    def _pretrain_cfg(self, row: str, seed: int):
        base = self.variants.get(row) or SWITCH_ROWS.get(row)
        config, labels, extra = PRETRAINED[base[0] if base else row] if row != "random-init" else PRETRAINED["mae"]
        p = self.preset
        overrides = [
            *MODEL,
            *p["model"],
            f"engine.seed={seed}",
            f"engine.device={p['device']}",
            "engine.amp=" + ("bf16" if p["device"] == "cuda" else "off"),
            f"data.num_workers={4 if p['device'] == 'cuda' else 0}",
            "data.scale=[0.35,1.0]",
            "engine.tensorboard=false",
            "engine.progress=false",
            "engine.image_every=0",
            "engine.log_every=10",
            "engine.checkpoint_every=1000000",
            "optim.blr=5.0e-3",
            f"optim.epochs={p['pretrain_epochs']}",
            f"optim.warmup_epochs={max(1, p['pretrain_epochs'] // 10)}",
            f"optim.batch_size={p['batch']}",
            *extra,
            *(base[1] if base else []),
        ]
        return load_config(config, overrides), labels

    def _eval_cfg(self, seed: int, ft_epochs: int | None) -> EvalConfig:
        p = self.preset
        epochs = ft_epochs or p["ft_epochs"]
        overrides = [
            f"run.seed={seed}",
            f"run.device={p['device']}",
            f"run.num_workers={4 if p['device'] == 'cuda' else 0}",
            "run.progress=false",
            "run.feature_batch=256",
            "encoder.pool=avg",  # MAE trains no CLS token
            "encoder.crop_pct=1.0",  # 32 px images: no resize-and-crop at evaluation
            *FINETUNE,
            f"finetune.epochs={epochs}",
            f"finetune.warmup_epochs={max(1, epochs // 10)}",
            f"finetune.batch_size={p['batch']}",
            f"linear.epochs={p['linear_epochs']}",
            "linear.batch_size=256",
            f"dense.epochs={p['dense_epochs']}",
            "dense.batch_size=256",
            "dense.lr=1e-2",
            f"dense.train_labels={self.data['gt']}",
            f"dense.val_labels={self.data['gt_val']}",
        ]
        return load_config(None, overrides, config_class=EvalConfig)

    def _cached(self, what: tuple, compute) -> dict:
        """compute()'s dict, or the one a run of the same code and settings stored; the seconds it
        took when computed count towards the row's wall time either way."""
        path = self.out / "scores" / f"{_key(*[str(w) for w in what], self.code)}.json"
        if path.is_file():
            record = json.loads(path.read_text())
        else:
            t = time.perf_counter()
            record = {"value": compute(), "seconds": 0.0, "load_average": os.getloadavg()[0]}
            record["seconds"] = time.perf_counter() - t
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record) + "\n")
        self.spent += record["seconds"]
        return record["value"]

    # ------------------------------------------------------------------ decisions
    def _decide(self, stage: str, seeds: int, force: bool, ok: bool, calibration: dict) -> dict:
        pilot = (
            [self._verdict("mae", "random-init", key) for key, _ in report.PRIMARY] if "mae" in self.per_seed else []
        )
        go = ok and any(v["verdict"] == "mae beats random-init" for v in pilot)
        if not ok:
            decision = (
                "STOP: the ceiling is not well above the floor "
                f"(rule: beats it and by >= {report.CALIBRATION_MARGIN:.0f} points); this benchmark cannot rank methods"
            )
        elif go:
            decision = "GO: mae beats random-init under fine-tuning; the grid can rank methods"
        else:
            decision = "NO-GO: mae does not beat random-init in this budget (the grid would rank nothing above it)"
        if force and not (ok and go):
            decision += " — rows past it were run by --force-grid: information, not a ranking this benchmark supports"
        print(decision, flush=True)
        return {
            "preset": self.name,
            **{k: v for k, v in self.preset.items() if k != "model"},
            "stage": stage,
            "seeds": seeds,
            "calibration": calibration,
            "decision": decision,
            "go_grid": stage == "grid" and ((ok and go) or force),
            "forced": force and not (ok and go),
        }

    def _verdicts(self, grid: bool) -> dict:
        pairs = [("mae", "random-init")] if "mae" in self.per_seed else []
        if grid:
            pairs += [
                ("c2fmae", "mae"),
                ("c2fmae", "random-init"),
                ("c2fmae", "c2fmae-nocurr"),
                ("c2fmae", "parallel"),
                ("c2fmae-gt", "c2fmae"),
                ("c2fmae-gt", "mae"),  # added after the cpu-long grid's numbers were seen
                ("parallel", "mae"),
            ]
            pairs += [(v, base) for v in (*SWITCH_ROWS, *self.variants) for base in ("c2fmae", "mae")]
        return {"verdicts": [self._verdict(a, b, key) for a, b in pairs for key, _ in report.PRIMARY]}

    def _verdict(self, a: str, b: str, key: str) -> dict:
        va, vb = ([r[key] for r in self.per_seed[x]] for x in (a, b))
        return {"a": a, "b": b, "metric": key, **report.paired_verdict(va, vb, a, b)}

    def _write(self, result: dict) -> dict:
        result["labels"] = LABELS
        if "agreement" in self.data:
            result["classic_foreground_iou"] = self.data["agreement"]
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "results.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        text = markdown(result)
        (self.out / "results.md").write_text(text + "\n")
        report.plot(result, self.out / "results.png")
        print(text)
        return result


def markdown(result: dict) -> str:
    """The tables of a result: primary, secondary, the rule's verdicts and the decision."""
    c = result["calibration"]
    gap = "—" if c["mean"] is None else f"{c['mean']:+.1f} ± {c['std']:.1f}"
    return "\n\n".join(
        [
            "Primary: fine-tuning top-1 (pixels: a linear classifier on the raw pixels)",
            report.summary_table(result["per_seed"], report.PRIMARY, result["labels"]),
            "Secondary: frozen encoders (average-pooled tokens; dense probe on exact ground truth)",
            report.summary_table(result["per_seed"], report.SECONDARY, result["labels"]),
            f"Calibration, ceiling (fine-tune, all labels) - floor (best pixel classifier): {gap} → {c['verdict']}",
            report.verdict_table(result["verdicts"]),
            result["decision"],
        ]
    )


def code_version() -> str:
    """sha256 (12 hex) of every .py/.yaml file under CODE_PATHS (path and bytes) and PROTOCOL."""
    digest = hashlib.sha256(f"protocol {PROTOCOL}".encode())
    for entry in CODE_PATHS:
        base = ROOT / entry
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.suffix in (".py", ".yaml"))
        for path in files:
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def foreground_iou(classic: Path, gt: Path) -> float:
    """IoU of the classic labels' "object" class (0) with the true shape pixels."""
    from datasets_spec import open_store

    a, b = open_store(classic), open_store(gt)
    keys_b = {str(k): i for i, k in enumerate(b.keys())}
    inter = union = 0
    for i, key in enumerate(a.keys()):
        pseudo = a.read(i).semantic == 0
        truth = b.read(keys_b[str(key)]).semantic > 0
        inter += int((pseudo & truth).sum())
        union += int((pseudo | truth).sum())
    return inter / max(union, 1)


@contextlib.contextmanager
def _exclusive(out: Path):
    """Hold `out`'s lock file (fcntl): one process at a time builds what the seeds share."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _last_losses(run_dir: Path) -> dict:
    """The latest logged value of each loss (total and per target) and, from a run with
    ``engine.loss_probe``, of each gradient share and per-strategy loss (probed on the regular
    records only, so these may come from a record before the last)."""
    log = run_dir / "log.jsonl"
    last = {}
    for record in read_records(log) if log.is_file() else []:
        last.update(record)
    kept = ("loss", "grad_share/")
    return {k: v for k, v in last.items() if k.startswith(kept) and isinstance(v, (int, float))}


def _git_describe() -> str:
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        return done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def switch_configs() -> dict[str, tuple[str, list[str]]]:
    """The switch rows as name -> (their base row's config, their overrides)."""
    return {row: (PRETRAINED[base][0], sets) for row, (base, sets) in SWITCH_ROWS.items()}


def _variants(items: list[str]) -> dict[str, tuple[str, list[str]]]:
    """--variant NAME=BASE:KEY=VALUE,... -> {NAME: (BASE, [KEY=VALUE, ...])}."""
    out = {}
    for item in items:
        name, _, rest = item.partition("=")
        base, _, sets = rest.partition(":")
        if not name or base not in PRETRAINED or name in (*PILOT_ROWS, *GRID_ROWS, *SWITCH_ROWS):
            raise SystemExit(
                f"--variant expects NAME=BASE:KEY=VALUE,... with a new NAME and BASE one of "
                f"{', '.join(PRETRAINED)}, got {item!r}"
            )
        out[name] = (base, [s for s in sets.split(",") if s])
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes: a pipeline check, not evidence")
    p.add_argument("--preset", choices=("cpu", "cpu-long", "gpu"), default="cpu", help="sizes (gpu: one CUDA device)")
    p.add_argument("--stage", choices=("pilot", "grid"), default="pilot")
    p.add_argument("--seeds", type=int, default=3, help="paired seeds (the rule needs >= 3)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the generated scenes")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: best on a shared machine)")
    p.add_argument("--out", default=None, help="work and result folder (default runs/small_evidence_PRESET)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=BASE:KEY=VALUE,...")
    p.add_argument("--force-grid", action="store_true", help="run past the calibration stop and NO-GO (marked forced)")
    p.add_argument("--only-seed", type=int, default=None, help="fill the cache for this seed only (parallel runs)")
    p.add_argument("--only-row", default=None, metavar="ROW", help="fill the cache for this row only (all --seeds)")
    p.add_argument("--predict-gpu", action="store_true", help="print the gpu preset's predicted H100 time")
    return p


if __name__ == "__main__":
    main()
