"""`c2f-train`: a thin command line over training.engine.train and training.export.export_encoder.

    c2f-train --config CONFIG --data DATASET --images IMAGES --out RUN_DIR
              [--max-steps N] [--seed S] [--set key=value ...]
    c2f-train export RUN_DIR -o ENCODER_DIR [--license ID] [--dataset HUB_DATASET_ID]
    c2f-train eval --encoder ENCODER_DIR --protocol {knn,linear,finetune,dense}... --train DIR --val DIR
                   [--out RESULTS_DIR] [--config EVAL_YAML] [--set key=value ...]

A user mistake is one line on stderr, `c2f-train: error: ...`, and exit code 2; never a traceback
(plumbing.cli_boundary). Ctrl-C exits with 130 and names the command that resumes. SIGTERM (a
scheduler's stop, or torchrun passing one on) stops training after the step at which all ranks
agree to stop, writes the checkpoint at that step, and exits with 143 and the resume line
(training/preemption.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from datasets_spec.errors import StoreError
from plumbing.cli_boundary import DISK_ERRNOS, Terminated, add_set_flag, add_verbose_flag, run, setup_logging
from plumbing.cli_boundary import ArgumentParser as _Parser
from training.errors import TrainingError
from training.preemption import stop_on_sigterm

PROG = "c2f-train"


def train_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Pre-train a ViT with C2FMAE (or the mae / parallel "
        "ablations) on a c2fmae store. Rerun with the same --out to resume.",
        epilog=f"export the encoder of a run: {PROG} export RUN_DIR -o ENCODER_DIR",
    )
    p.add_argument(
        "--config", required=True, help="a YAML config file, or a packaged config by name (c2fmae_vit_b16_1600e, ...)"
    )
    p.add_argument("--data", required=True, help="the labeled store (c2f-label -o): a path or s3:// / gs:// URL")
    p.add_argument("--images", required=True, help="the image root given to c2f-label")
    p.add_argument("--out", required=True, help="run directory (resumed when it has a checkpoint)")
    p.add_argument(
        "--max-steps",
        type=_positive,
        default=None,
        help="stop after N optimizer steps in total (schedules are unchanged)",
    )
    p.add_argument("--seed", type=int, default=None, help="same as --set engine.seed=S")
    add_set_flag(p, "optim.blr=1e-3")
    add_verbose_flag(p)
    return p


def export_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=f"{PROG} export",
        description="Write a run's encoder in timm's Hugging Face layout: DIR/model.safetensors "
        "and DIR/config.json (architecture, model_args, pretrained_cfg with the training mean/std), "
        'and its model card DIR/README.md; timm.create_model("local-dir:DIR", pretrained=True) loads it.',
    )
    p.add_argument("run_dir", help="a c2f-train run directory")
    p.add_argument("-o", "--output", required=True, help="output directory (created; its three files are replaced)")
    p.add_argument("--license", default=None, help="the card's Hub licence id, e.g. apache-2.0 (default: unset)")
    p.add_argument(
        "--dataset", default=None, help="the card's Hub dataset id of the training data, e.g. USER/NAME (default: none)"
    )
    return p


def eval_parser() -> argparse.ArgumentParser:
    from training.eval import PROTOCOLS

    p = _Parser(
        prog=f"{PROG} eval",
        description="Evaluate an encoder (c2f-train export output, a timm Hugging Face directory, or "
        "a timm ViT state dict with --set encoder.timm_model=NAME); see docs/evaluation.md.",
    )
    p.add_argument(
        "--encoder",
        required=True,
        help="export directory (DIR or local-dir:DIR), or a .pth state dict (an encoder.json beside it is read)",
    )
    p.add_argument(
        "--protocol", required=True, nargs="+", choices=PROTOCOLS, help="one or more, run in turn (e.g. knn linear)"
    )
    p.add_argument("--train", required=True, help="training images: class folders (dense: store image root)")
    p.add_argument("--val", required=True, help="validation images, same layout (or ImageNet's flat val)")
    p.add_argument("--out", default=None, help="results directory: PROTOCOL.json (finetune: checkpoints)")
    p.add_argument("--config", default=None, help="YAML of eval settings (sections as --set keys)")
    add_set_flag(p, "knn.k=10")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    resumes = argv[:1] not in (["export"], ["eval"]) and _rank() == 0  # under torchrun: one resume line
    return run(PROG, lambda: _main(argv), errors=(StoreError, TrainingError), resume=[PROG, *argv] if resumes else None)


def _main(argv: list[str]) -> int:
    if argv[:1] == ["export"]:
        args = export_parser().parse_args(argv[1:])
        setup_logging(PROG, default=logging.INFO)
        return _export(args)
    if argv[:1] == ["eval"]:
        args = eval_parser().parse_args(argv[1:])
        setup_logging(PROG, default=logging.INFO)
        return _eval(args)
    args = train_parser().parse_args(argv)
    setup_logging(PROG, args.verbose, default=logging.INFO)
    return _train(args)


def _train(args: argparse.Namespace) -> int:
    with stop_on_sigterm() as stop:  # from the start: a SIGTERM during set-up stops after one step
        from training.config import load_config
        from training.engine import train

        overrides = [*args.overrides, *([f"engine.seed={args.seed}"] if args.seed is not None else [])]
        cfg = load_config(args.config, overrides)
        try:
            summary = train(cfg, args.data, args.images, args.out, max_steps=args.max_steps, stop=stop.requested)
        except OSError as exc:
            if exc.filename is not None or exc.errno not in DISK_ERRNOS:
                raise
            # a write that failed when the file was closed names no file; c2f-train writes only --out
            raise TrainingError(f"{args.out}: cannot write the run ({exc.strerror})") from None
        if summary["stopped"]:
            rank = f" (rank {_rank()})" if _rank() else ""
            raise Terminated(f"at step {summary['step']}{rank}, checkpoint {summary['run_dir']}/latest.pt")
    return 0


def _export(args: argparse.Namespace) -> int:
    from training.export import export_encoder
    from training.models.timm_layout import CARD_FILE, CONFIG_FILE, WEIGHTS_FILE

    config = export_encoder(args.run_dir, args.output, license=args.license, dataset=args.dataset)
    load = f'timm.create_model("local-dir:{args.output}", pretrained=True)'
    print(
        f"{PROG}: wrote {args.output}/{WEIGHTS_FILE}, {CONFIG_FILE} and {CARD_FILE} ({config['architecture']}, "
        f"step {config['c2fmae']['step']}); load it with {load}"
    )
    return 0


def _eval(args: argparse.Namespace) -> int:
    import json

    from training.config import load_config
    from training.eval import EvalConfig, run_evals

    cfg = load_config(args.config, args.overrides, config_class=EvalConfig)
    results = run_evals(args.protocol, args.encoder, args.train, args.val, args.out, cfg)
    if _rank() == 0:
        for result in results:
            print(json.dumps({"protocol": result["protocol"], **result["metrics"]}))
    return 0


def _rank() -> int:
    """This process's rank under torchrun (0 in a single process)."""
    return int(os.environ.get("RANK", "0"))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
