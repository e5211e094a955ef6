"""c2f-data: inspect and check a c2fmae dataset store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from .errors import StoreError
from .info import format_info, info
from .reader import open_store
from .schema import MARKERS_DIR
from .synthetic import make_synthetic_store
from .validate import validate


def _validate(args) -> int:
    total = len(list(Path(args.path, MARKERS_DIR).glob("shard-*.json")))
    with tqdm(total=total, desc="validate", unit="shard", disable=args.quiet) as bar:
        problems = validate(args.path, pixels=not args.quick, progress=bar.update)
    for line in problems:
        print(f"{args.path}: {line}")
    if problems:
        print(f"c2f-data: {len(problems)} problem(s) in {args.path}", file=sys.stderr)
        return 1
    print(f"{args.path}: valid")
    return 0


def _info(args) -> int:
    summary = info(open_store(args.path))
    print(json.dumps(summary, indent=1) if args.json else format_info(summary))
    return 0


def _synth(args) -> int:
    layout = make_synthetic_store(args.out, args.images, args.count, args.canvas, args.shard_size, args.seed)
    print(f"wrote {layout.num_images} synthetic images to {args.images} and their store to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="c2f-data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="check a store; one line per problem, exit 1 if any")
    p.add_argument("path")
    p.add_argument("--quick", action="store_true", help="skip reading mask data")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_validate)
    p = sub.add_parser("info", help="counts, geometry, label space, provenance")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_info)
    p = sub.add_parser("synth", help="write synthetic images and a complete store of their exact masks")
    p.add_argument("out", help="store directory to create")
    p.add_argument("--images", required=True, help="folder for the generated images")
    p.add_argument("--count", type=int, default=48)
    p.add_argument("--canvas", type=int, default=64)
    p.add_argument("--shard-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_synth)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StoreError as exc:
        print(f"c2f-data: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
