"""c2f-data: inspect, check, summarise, picture, export, evaluate and publish a c2fmae dataset store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from datasets_spec import storage
from datasets_spec.errors import StoreError
from datasets_spec.reader import open_store
from datasets_spec.validate import validate
from plumbing.cli_boundary import OK, PROBLEMS, ArgumentParser, add_verbose_flag, run, setup_logging

from ._checksums import SUMS_NAME
from ._stats_plot import plot_stats
from .coco_export import export_coco
from .info import format_info, info
from .label_quality import eval_coco, eval_semantic, format_eval
from .merge import merge
from .parquet_release import TARGET_BYTES
from .publish import FORMATS, RECHUNK, publish
from .semantic_export import export_semantic
from .show import show
from .show_selection import STATUSES, Filters
from .stats import compute_stats, format_stats
from .synthetic import make_synthetic_store
from .verify import verify

PROG = "c2f-data"


def _validate(args) -> int:
    _require_dir(args.path, "dataset")
    try:
        total = len(open_store(args.path).done_shards())
    except StoreError:
        total = None  # validate names what is wrong
    with tqdm(total=total, desc="validate", unit="shard", disable=args.quiet) as bar:
        problems = validate(args.path, pixels=not args.quick, progress=bar.update)
    return _report(args.path, problems, ": ", "valid")


def _info(args) -> int:
    summary = info(open_store(args.path))
    print(json.dumps(summary, indent=1) if args.json else format_info(summary))
    return 0


def _stats(args) -> int:
    summary = compute_stats(open_store(args.path), scheduler=args.scheduler, progress=not args.quiet)
    if args.plot:
        plot_stats(summary, args.plot)
    print(json.dumps(summary, indent=1) if args.json else format_stats(summary))
    return 0


def _export_coco(args) -> int:
    counts = export_coco(
        open_store(args.path), args.output, class_agnostic=args.class_agnostic, progress=not args.quiet
    )
    if args.json:
        print(json.dumps(counts))
        return 0
    left_out = counts["skipped_unclassed"]
    print(
        f"wrote {counts['images']} images and {counts['annotations']} annotations to {args.output}"
        + (f" ({left_out} instances without a class left out)" if left_out else "")
    )
    return 0


def _export_semantic(args) -> int:
    counts = export_semantic(open_store(args.path), args.output, progress=not args.quiet)
    if args.json:
        print(json.dumps(counts))
        return 0
    left_out = counts["failed"] + counts["pending"]
    print(
        f"wrote {counts['images']} {counts['bit_depth']}-bit label PNGs (ignore = {counts['ignore']}) and "
        f"classes.json to {args.output}" + (f" ({left_out} failed or pending images left out)" if left_out else "")
    )
    return 0


def _eval(args) -> int:
    store = open_store(args.path)
    if bool(args.gt_coco) == bool(args.gt_semantic):
        raise StoreError("eval needs exactly one of --gt-coco and --gt-semantic")
    if args.reduce_zero_label and not args.gt_semantic:
        raise StoreError("--reduce-zero-label applies to --gt-semantic label PNGs")
    if args.gt_coco:
        result = eval_coco(store, args.gt_coco)
    else:
        result = eval_semantic(
            store,
            args.gt_semantic,
            reduce_zero_label=args.reduce_zero_label,
            scheduler=args.scheduler,
            progress=not args.quiet,
        )
    print(json.dumps(result, indent=1) if args.json else format_eval(result))
    return 0


def _publish(args) -> int:
    summary = publish(
        open_store(args.path),
        args.output,
        fmt=args.format,
        rechunk=args.rechunk,
        license_id=args.license,
        license_name=args.license_name,
        license_link=args.license_link,
        target_bytes=int(args.file_mb * (1 << 20)),
        progress=not args.quiet,
    )
    print(
        json.dumps(summary)
        if args.json
        else f"released {args.path} to {args.output} ({args.format}): {summary['files']} files; "
        f"check it with: c2f-data verify {args.output}"
    )
    return 0


def _verify(args) -> int:
    _require_dir(args.path, "release")
    # verify's lines start with a file of the release: they read as paths below it
    return _report(args.path, verify(args.path), "/", "every checksum matches and the data is valid")


def _require_dir(path: str, what: str) -> None:
    """A missing store or release, or object storage that cannot be reached, is an input error
    (exit 2), as for every other command; what validate and verify find inside one is their
    report (exit 1)."""
    if not storage.is_url(path):
        if not Path(path).is_dir():
            raise StoreError(f"{path}: no such {what} directory")
        return
    first = "zarr.json" if what == "dataset" else SUMS_NAME
    if not storage.exists(path, first):  # an unreachable endpoint raises: the boundary's one line
        raise StoreError(f"{path}: no such {what} (no {first})")


def _report(path, problems: list[str], sep: str, ok: str) -> int:
    """One line `path{sep}problem` each, a count on stderr and exit 1; else `path: ok` and 0."""
    for line in problems:
        print(f"{path}{sep}{line}")
    if problems:
        print(f"{PROG}: {len(problems)} problem(s) in {path}", file=sys.stderr)
        return PROBLEMS
    print(f"{path}: {ok}")
    return OK


def _show(args) -> int:
    filters = Filters(args.status, args.class_name, args.min_instances)
    path = show(
        open_store(args.path), args.images, args.output, n=args.n, keys=args.keys, seed=args.seed, filters=filters
    )
    print(f"wrote {path}")
    return 0


def _merge(args) -> int:
    summary = merge(open_store(args.a), open_store(args.b), args.output, progress=not args.quiet)
    print(f"merged {args.a} and {args.b} into {args.output}: {summary['images']} images, {summary['shards']} shards")
    return 0


def _synth(args) -> int:
    layout = make_synthetic_store(
        args.out, args.images, args.count, args.canvas, args.shard_size, args.seed, distinct=args.distinct
    )
    print(f"wrote {layout.num_images} synthetic images to {args.images} and their store to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=PROG, description=__doc__)
    add_verbose_flag(parser)
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
    p = sub.add_parser("stats", help="class, coverage, instance and failure statistics (Dask, bounded memory)")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--plot", metavar="PNG", help="also draw the statistics as one PNG dashboard")
    p.add_argument("--scheduler", metavar="ADDRESS", help="dask.distributed scheduler (default: local threads)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_stats)
    p = sub.add_parser("show", help="picture of labeled images: photo | semantic overlay | instance overlay")
    p.add_argument("path")
    p.add_argument("--images", required=True, help="image root the keys are relative to")
    p.add_argument("-n", type=int, default=16, help="number of random done images (default 16)")
    p.add_argument("--keys", nargs="+", metavar="KEY", help="show these images instead of random ones")
    p.add_argument("--seed", type=int, default=0, help="seed of the random choice")
    p.add_argument(
        "--status", choices=list(STATUSES), default="done", help="done images (default), or failed: photo and reason"
    )
    p.add_argument(
        "--class",
        dest="class_name",
        metavar="NAME",
        help="only images with an instance of this class of the label space (c2f-data info lists them)",
    )
    p.add_argument("--min-instances", type=int, default=0, metavar="N", help="only images with at least N instances")
    p.add_argument("-o", "--output", required=True, help="PNG to write")
    p.set_defaults(func=_show)
    p = sub.add_parser("export-coco", help="COCO instance-segmentation JSON (RLE at original size, with scores)")
    p.add_argument("path")
    p.add_argument("-o", "--output", required=True, help="JSON file to write")
    p.add_argument("--class-agnostic", action="store_true", help="one category 'object' for every instance")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_export_coco)
    p = sub.add_parser("export-semantic", help="one label PNG per image at original size, the store's class ids")
    p.add_argument("path")
    p.add_argument("-o", "--output", required=True, help="folder to create (or an empty one)")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_export_semantic)
    p = sub.add_parser("eval", help="label quality against ground truth: COCO AP/AR or semantic mIoU")
    p.add_argument("path")
    p.add_argument("--gt-coco", metavar="JSON", help="COCO instances JSON; images matched by file_name = key")
    p.add_argument(
        "--gt-semantic",
        metavar="DIR_OR_STORE",
        help="a store, or a folder of label PNGs DIR/<key without suffix>.png whose values are our class ids",
    )
    p.add_argument(
        "--reduce-zero-label",
        action="store_true",
        help="the PNGs count classes from 1 and 0 is 'other' (ADE20K): 0 is ignored, v is class v - 1",
    )
    p.add_argument("--scheduler", metavar="ADDRESS", help="dask.distributed scheduler (default: local threads)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_eval)
    p = sub.add_parser("publish", help="a release without image pixels: data, card, Croissant, SHA256SUMS")
    p.add_argument("path")
    p.add_argument("-o", "--output", required=True, help="release directory to create")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="parquet",
        help="parquet: the Hugging Face Hub's layout, datasets.load_dataset reads it (default); "
        "zarr: the store itself, to train from",
    )
    p.add_argument("--file-mb", type=float, default=TARGET_BYTES >> 20, help="Parquet file size target (MB)")
    p.add_argument("--rechunk", choices=RECHUNK, help="zarr: rewrite the masks unsharded, one chunk per shard or image")
    p.add_argument("--license", default="unknown", help="the Hub's licence id (SPDX, e.g. cc-by-4.0) or 'other'")
    p.add_argument("--license-name", help="with --license other: a short id for the licence")
    p.add_argument("--license-link", help="with --license other: the licence's URL")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_publish)
    p = sub.add_parser("verify", help="check a release's checksums and its data; one line per problem")
    p.add_argument("path")
    p.set_defaults(func=_verify)
    p = sub.add_parser("merge", help="join two complete stores over disjoint images (same labeler and label space)")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("-o", "--output", required=True, help="store to create")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_merge)
    p = sub.add_parser("synth", help="write synthetic images and a complete store of their exact masks")
    p.add_argument("out", help="store directory to create")
    p.add_argument("--images", required=True, help="folder for the generated images")
    p.add_argument("--count", type=int, default=48)
    p.add_argument("--canvas", type=int, default=64)
    p.add_argument("--shard-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--distinct", type=int, metavar="K", help="draw K images and repeat them (hard links): big stores fast"
    )
    p.set_defaults(func=_synth)
    return parser


def main(argv=None) -> int:
    """Exit codes and error lines as in plumbing.cli_boundary."""
    return run(PROG, lambda: _main(argv), errors=(StoreError,))


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(PROG, args.verbose)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
