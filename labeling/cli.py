"""c2f-label: pseudo-label images into a dataset store, on a local Ray or an existing cluster.

Runs again on the same DATASET resume: done shards are skipped; a different input list or
different backend settings are refused.
"""

from __future__ import annotations

import argparse
import logging
import sys

import yaml

from datasets_spec import StoreError

from .config import load_config
from .errors import LabelingError
from .job import format_report, run_label_job


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="c2f-label", description=__doc__)
    p.add_argument("images", help="ImageNet root (<root>/train/<wnid>/*.JPEG), any image folder, or a text file of paths")
    p.add_argument("-o", "--output", required=True,
                   help="dataset store to create or resume: a path, s3://bucket/prefix or gs://bucket/prefix")
    p.add_argument("--config", help="YAML config (see configs/label_*.yaml)")
    p.add_argument("--backend", help="set both backends, e.g. classic")
    p.add_argument("--semantic", help="semantic backend name (classic, hf)")
    p.add_argument("--instance", help="instance backend name (classic, grounded, sam-amg, none)")
    p.add_argument("--shard-size", type=int, help="images per shard (default 128)")
    p.add_argument("--canvas", type=int, help="mask canvas side S (default 256)")
    p.add_argument("--address", help="Ray cluster address to join (default: start a local one on loopback)")
    p.add_argument("--workers", type=int, help="label workers (default: one per GPU share, or 1 on CPU)")
    p.add_argument("--gpus-per-worker", type=float, help="GPUs per worker, fractions allowed (default 0)")
    p.add_argument("--limit", type=int, help="label only the first N images of the list")
    p.add_argument("--prompts", metavar="FILE",
                   help='JSON text prompts per image key, folder/ or "*", e.g. {"birds/": ["bird"]} (grounded)')
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set semantic.model=PATH or --set min_area=16")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _overrides(args) -> dict:
    out = {"shard_size": args.shard_size, "canvas": args.canvas, "address": args.address,
           "workers": args.workers, "gpus_per_worker": args.gpus_per_worker, "limit": args.limit,
           "prompts": args.prompts}
    for role in ("semantic", "instance"):
        name = getattr(args, role) or args.backend
        if name:
            out[role] = {"name": name}
    return out


def _apply_sets(cfg, sets: list[str]):
    """--set key=value, where key is a top-level key or <semantic|instance>.<parameter>."""
    flat = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise LabelingError(f"--set {item!r}: expected KEY=VALUE")
        value = yaml.safe_load(value)
        role, dot, param = key.partition(".")
        if dot and role in ("semantic", "instance"):
            backend = getattr(cfg, role)
            if backend is None:
                raise LabelingError(f"--set {key}: no {role} backend is configured")
            backend.params[param] = value
        else:
            flat[key] = value
    return flat


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config, _overrides(args))
        flat = _apply_sets(cfg, args.set)
        if flat:
            cfg = load_config(args.config, {**_overrides(args), **flat})
            _apply_sets(cfg, [s for s in args.set if s.split("=", 1)[0].split(".", 1)[0] in ("semantic", "instance")])
        report = run_label_job(args.images, args.output, cfg, show_progress=not args.quiet)
    except (LabelingError, StoreError) as exc:
        print(f"c2f-label: error: {exc}", file=sys.stderr)
        return 2
    print(format_report(report))
    return 1 if report["shards_given_up"] else 0


if __name__ == "__main__":
    sys.exit(main())
