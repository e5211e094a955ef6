"""c2f-label: pseudo-label images into a dataset store, on a local Ray or an existing cluster.

Runs again on the same DATASET resume: done shards are skipped; a different input list or
different backend settings are refused. SIGTERM or Ctrl-C: no more shards are handed out, those
in flight get --grace seconds, the report is written. Exit codes: 0 every image done or failed
(failures are recorded in the store), 1 shards left pending after repeated faults (rerun to retry
them), 2 a usage, input or environment error, 75 object storage unavailable through its retries,
130 interrupted (Ctrl-C), 143 terminated (SIGTERM); each with the command that resumes.
"""

from __future__ import annotations

import argparse
import json
import sys

from datasets_spec.errors import StoreError
from plumbing.cli_boundary import (
    OK,
    PROBLEMS,
    ArgumentParser,
    Terminated,
    add_set_flag,
    add_verbose_flag,
    run,
    setup_logging,
)

from .config import load_config
from .errors import LabelingError
from .job import run_label_job
from .report import format_report

PROG = "c2f-label"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "images", help="ImageNet root (<root>/train/<wnid>/*.JPEG), any image folder, or a text file of paths"
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="dataset store to create or resume: a path, s3://bucket/prefix or gs://bucket/prefix",
    )
    p.add_argument("--config", help="a YAML config file, or a packaged config by name (label_paper)")
    p.add_argument("--backend", help="set both backends, e.g. classic")
    p.add_argument("--semantic", help="semantic backend name (classic, hf)")
    p.add_argument("--instance", help="instance backend name (classic, grounded, sam-amg, none)")
    p.add_argument("--shard-size", type=int, help="images per shard (default 128)")
    p.add_argument("--canvas", type=int, help="mask canvas side S (default 256)")
    p.add_argument(
        "--address",
        help="Ray cluster to join, HOST:PORT or auto (default: $RAY_ADDRESS, else a local Ray on loopback; "
        "local: a local one even where RAY_ADDRESS is set)",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="the most label workers at once, asked of the autoscaler and started as nodes join "
        "(default: one per GPU share of the nodes, or 1 on CPU)",
    )
    p.add_argument("--gpus-per-worker", type=float, help="GPUs per worker, fractions allowed (default 0)")
    p.add_argument(
        "--worker-resources",
        type=_resources,
        metavar="JSON",
        help="custom Ray resources per worker (as `ray start --resources` names them), "
        "e.g. '{\"accelerator_type:A100\": 0.01}'",
    )
    p.add_argument(
        "--wait-timeout",
        type=float,
        metavar="SECONDS",
        help="how long to wait for a node with room for a worker while none has (an autoscaler adding "
        "one; default 600; 0: fail at once)",
    )
    p.add_argument("--limit", type=int, help="label only the first N images of the list")
    p.add_argument(
        "--grace",
        type=float,
        metavar="SECONDS",
        help="after SIGTERM or Ctrl-C, how long the shards in flight may take to finish (default 20)",
    )
    p.add_argument(
        "--prompts",
        metavar="FILE",
        help='JSON text prompts per image key, folder/ or "*", e.g. {"birds/": ["bird"]} (grounded)',
    )
    add_set_flag(p, "semantic.model=PATH")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_verbose_flag(p)
    return p


def _resources(text: str):
    """--worker-resources: a JSON object (its values are checked with the config)."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"labeler\": 1}}', got {text!r}")
    return value


def _flags(args) -> dict:
    out = {
        "shard_size": args.shard_size,
        "canvas": args.canvas,
        "address": args.address,
        "workers": args.workers,
        "gpus_per_worker": args.gpus_per_worker,
        "worker_resources": args.worker_resources,
        "wait_timeout": args.wait_timeout,
        "limit": args.limit,
        "grace": args.grace,
        "prompts": args.prompts,
    }
    for role in ("semantic", "instance"):
        name = getattr(args, role) or args.backend
        if name:
            out[role] = {"name": name}
    return out


def main(argv=None) -> int:
    """Exit codes and error lines as in plumbing.cli_boundary; Ctrl-C and SIGTERM name the rerun."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    return run(PROG, lambda: _main(argv), errors=(StoreError, LabelingError), resume=[PROG, *argv])


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(PROG, args.verbose)
    cfg = load_config(args.config, args.overrides, flags=_flags(args))
    report = run_label_job(args.images, args.output, cfg, show_progress=not args.quiet, keep_logs=args.verbose > 0)
    print(format_report(report))
    if report.get("stopped_by") == "SIGTERM":
        raise Terminated  # exit 143 with the resume line, as SIGTERM before the shards began
    if report.get("stopped_by"):
        raise KeyboardInterrupt
    return PROBLEMS if report["shards_given_up"] or report["pending"] else OK


if __name__ == "__main__":
    sys.exit(main())
