"""`run_eval`: one protocol on one encoder, in one process or under torchrun, with a JSON result
(`run_evals`: several protocols in turn, the process group joined once).

run_eval("knn", "encoder", "data/train", "data/val", out="results", cfg=EvalConfig())
-> results/knn.json: {"protocol", "metrics": {...}, "encoder": {...}, "num_train", ...}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from plumbing.files import atomic_write
from training import distributed
from training.config import to_dict
from training.errors import TrainingError
from training.eval.config import EvalConfig
from training.eval.dense import open_labeled, score_dense, train_dense
from training.eval.encoder import EncoderSpec, eval_transform, load_encoder, read_spec
from training.eval.features import extract, patch_features, pooled_features
from training.eval.finetune import finetune
from training.eval.folders import FolderDataset, scan_folder
from training.eval.knn import knn_scores
from training.eval.linear import probe_optimizer, train_probe
from training.eval.metrics import topk_accuracy

PROTOCOLS = ("knn", "linear", "finetune", "dense")


def run_eval(
    protocol: str,
    encoder: str | Path,
    train: str | Path,
    val: str | Path,
    out: str | Path | None = None,
    cfg: EvalConfig | None = None,
) -> dict:
    """Evaluate the encoder at `encoder` with `protocol`; writes OUT/{protocol}.json when `out` is set."""
    return run_evals([protocol], encoder, train, val, out, cfg)[0]


def run_evals(
    protocols: Sequence[str],
    encoder: str | Path,
    train: str | Path,
    val: str | Path,
    out: str | Path | None = None,
    cfg: EvalConfig | None = None,
) -> list[dict]:
    """`run_eval` for each of `protocols` in turn, in one process group; a result per protocol."""
    cfg = cfg or EvalConfig()
    for protocol in protocols:
        if protocol not in PROTOCOLS:
            raise TrainingError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if "finetune" in protocols and out is None:
        raise TrainingError("finetune needs --out (its checkpoints live there)")
    spec = read_spec(encoder, cfg.encoder)
    info = distributed.init_distributed(cfg.run.device)
    try:
        out = Path(out) if out is not None else None
        return [_evaluate(protocol, spec, cfg, Path(train), Path(val), info, out) for protocol in protocols]
    finally:
        distributed.cleanup()


def _evaluate(protocol: str, spec: EncoderSpec, cfg: EvalConfig, train: Path, val: Path, info, out) -> dict:
    body = _PROTOCOLS[protocol](spec, cfg, train, val, info, out)
    result = {
        "protocol": protocol,
        **body,
        "encoder": _describe(spec),
        "train": str(train),
        "val": str(val),
        "world_size": info.world_size,
        "config": {
            "run": to_dict(cfg.run),
            "encoder": to_dict(cfg.encoder),
            protocol: to_dict(getattr(cfg, protocol)),
        },
    }
    if out is not None and info.is_main:
        _write_json(out / f"{protocol}.json", result)
    return result


def _knn(spec, cfg, train, val, info, out) -> dict:
    (xt, yt), (xv, yv), classes = _pooled(spec, cfg, train, val, info)
    return {"metrics": topk_accuracy(knn_scores(xt, yt, xv, len(classes), cfg.knn), yv), **_counts(yt, yv, classes)}


def _linear(spec, cfg, train, val, info, out) -> dict:
    (xt, yt), (xv, yv), classes = _pooled(spec, cfg, train, val, info)
    head = train_probe(xt, yt, len(classes), cfg.linear, cfg.run.seed, _bar(cfg, info))
    with torch.no_grad():
        metrics = topk_accuracy(head(xv), yv)
    if out is not None and info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        torch.save(head.state_dict(), out / "linear_head.pth")
    batch = min(cfg.linear.batch_size, len(xt))
    return {
        "metrics": metrics,
        "lr": cfg.linear.blr * batch / 256,
        "batch_size": batch,
        "optimizer": probe_optimizer(cfg.linear, batch),
        **_counts(yt, yv, classes),
    }


def _dense(spec, cfg, train, val, info, out) -> dict:
    dc, model = cfg.dense, load_encoder(spec).to(info.device).eval()
    patch = int(model.patch_embed.patch_size[0])
    if patch % dc.stride:
        raise TrainingError(f"dense.stride {dc.stride} must divide the patch size {patch}")
    sets = [
        open_labeled(labels, role, root, spec.img_size, dc.stride, spec.mean, spec.std)
        for labels, role, root in ((dc.train_labels, "train", train), (dc.val_labels, "val", val))
    ]
    if sets[0].store.label_space != sets[1].store.label_space:
        raise TrainingError(f"{dc.train_labels} and {dc.val_labels} have different label spaces")
    prefix = model.num_prefix_tokens
    feats = [
        _extract(lambda x: patch_features(model.forward_features(x), prefix), ds, cfg, info, role)
        for ds, role in zip(sets, ("train", "val"))
    ]
    num_classes = sets[0].num_classes
    head = train_dense(*feats[0], num_classes, dc, cfg.run.seed, _bar(cfg, info))
    return {
        "metrics": score_dense(head, *feats[1]),
        "train_metrics": score_dense(head, *feats[0]),
        "num_train": len(sets[0]),
        "num_val": len(sets[1]),
        "num_classes": num_classes,
        "label_space": {str(k): v for k, v in sorted(sets[0].store.label_space.items())},
    }


def _finetune(spec, cfg, train, val, info, out) -> dict:
    train_folder = scan_folder(train)
    val_folder = scan_folder(val, train_folder.classes)
    metrics = finetune(spec, cfg, train_folder, val_folder, info, out)
    return {
        "metrics": metrics,
        "num_train": len(train_folder.items),
        "num_val": len(val_folder.items),
        "num_classes": len(train_folder.classes),
    }


_PROTOCOLS = {"knn": _knn, "linear": _linear, "finetune": _finetune, "dense": _dense}


def _pooled(spec: EncoderSpec, cfg: EvalConfig, train: Path, val: Path, info):
    """Frozen pooled features and labels of both folders, and the class names."""
    train_folder = scan_folder(train)
    val_folder = scan_folder(val, train_folder.classes)
    model = load_encoder(spec).to(info.device).eval()
    transform = eval_transform(spec, cfg.encoder.crop_pct)
    prefix, pool = model.num_prefix_tokens, cfg.encoder.pool

    def forward(x):
        return pooled_features(model.forward_features(x), prefix, pool)

    return (
        _extract(forward, FolderDataset(train_folder, transform), cfg, info, "train"),
        _extract(forward, FolderDataset(val_folder, transform), cfg, info, "val"),
        train_folder.classes,
    )


def _extract(forward, dataset, cfg: EvalConfig, info, role: str):
    return extract(
        forward,
        dataset,
        info,
        batch_size=cfg.run.feature_batch,
        num_workers=cfg.run.num_workers,
        progress=cfg.run.progress,
        desc=f"features ({role})",
    )


def _counts(train_labels, val_labels, classes) -> dict:
    return {"num_train": len(train_labels), "num_val": len(val_labels), "num_classes": len(classes)}


def _bar(cfg: EvalConfig, info) -> bool:
    return cfg.run.progress and info.is_main


def _describe(spec: EncoderSpec) -> dict:
    return {**asdict(spec), "path": str(spec.path)}


def _write_json(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(record, indent=2) + "\n").encode())
