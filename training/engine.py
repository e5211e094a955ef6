"""The pre-training run: set up data, model, optimizer and resume state, then loop over steps.

`train(cfg, data, images, out)` is what `c2f-train` calls. It resumes from RUN_DIR/latest.pt when
there is one, and stops after `max_steps` optimizer steps in total (default: the whole schedule of
optim.epochs x steps_per_epoch) without changing the lr or curriculum schedules, or earlier when
`stop()` says so (SIGTERM, training/preemption.py): after the step at which the ranks agree to
stop, with a checkpoint at that step, so that a resume loses no step.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from datasets_spec import StoreError, storage
from plumbing.errors import one_line
from training import distributed
from training.checkpoint import (
    check_compatible,
    load_checkpoint,
    make_state,
    remove_stale_temps,
    restore_rng,
    save_checkpoint,
)
from training.config import TrainConfig, save_config, to_dict
from training.data import build_dataset, gpu_decode, loader_kwargs
from training.errors import TrainingError
from training.logs import LOG_FILE, Meter, RunLogger
from training.loss_plot import save_loss_plot
from training.masking import Curriculum
from training.masking.curriculum_plot import save_curriculum_plot
from training.models.factory import build_model
from training.models.mae_checkpoint import load_mae_checkpoint
from training.optim import Schedule, build_optimizer, effective_batch
from training.pictures import draw_predictions
from training.sampler import ResumableSampler
from training.seeding import derive_seed, generator
from training.step import StepContext, StepResult, train_step
from training.visualize import draw_grid, write_png

log = logging.getLogger("training")
LOADER_SEED = 4  # purpose id of the DataLoader's own generator (worker base seeds)
CURRICULUM_PLOT = "curriculum.png"  # in RUN_DIR, drawn when a run starts
LOSS_PLOT = "losses.png"  # in RUN_DIR, drawn when a run ends or stops
GRID_TAG = "reconstructions"  # TensorBoard's image tag of the RUN_DIR/images grids


@dataclass
class Run:
    """A set-up run: what the loop needs beyond the step context."""

    cfg: TrainConfig
    info: distributed.DistInfo
    run_dir: Path
    loader: DataLoader
    sampler: ResumableSampler
    schedule: Schedule
    ctx: StepContext
    num_classes: int
    start_step: int
    stop_step: int
    nonfinite: int
    meter_state: dict | None  # the log's running sums at the resumed checkpoint (None: fresh run)

    def is_regular_record(self, step: int) -> bool:
        """Whether an uninterrupted run writes a log record after `step` optimizer steps."""
        return step % self.cfg.engine.log_every == 0 or step == self.schedule.total_steps


def train(
    cfg: TrainConfig,
    data: str | Path,
    images: str | Path,
    out: str | Path,
    max_steps: int | None = None,
    stop: Callable[[], bool] | None = None,
) -> dict:
    """Pre-train (or resume) into RUN_DIR `out`; returns the run summary (also printed).

    stop: polled once per step (e.g. preemption.StopRequest.requested); when it returns True on
    any rank, every rank stops after that step and the summary's "stopped" is True.
    """
    info = distributed.init_distributed(cfg.engine.device)
    try:
        run = setup(cfg, info, storage.normalize(data), Path(images), Path(out), max_steps)
        if stop is not None:
            run.ctx.stop_requested = stop
        return loop(run)
    finally:
        distributed.cleanup()


def setup(
    cfg: TrainConfig, info: distributed.DistInfo, data: Path | str, images: Path, run_dir: Path, max_steps: int | None
) -> Run:
    """Build dataset, sampler, model, optimizer; restore RUN_DIR's latest checkpoint if any."""
    gpu_decode.require_cuda(cfg.data, info.device)
    dataset = _dataset(cfg, data, images)
    sampler = ResumableSampler(
        len(dataset),
        batch_size=cfg.optim.batch_size,
        accum_iter=cfg.optim.accum_iter,
        rank=info.rank,
        world_size=info.world_size,
        seed=cfg.engine.seed,
    )
    seed_global_rngs(cfg.engine.seed)
    model = build_model(cfg.model, dataset.num_classes).to(info.device)
    optimizer = build_optimizer(model, cfg.optim, info.world_size)
    amp = _amp_dtype(cfg.engine.amp, info.device)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    curriculum = Curriculum(cfg.curriculum)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    distributed.barrier()
    start, nonfinite, meter_state = _resume(cfg, run_dir, model, optimizer, scaler)
    if start == 0 and cfg.model.init_from:  # a new run only: resuming keeps the trained weights
        load_mae_checkpoint(model, cfg.model.init_from)
    if info.is_main:
        remove_stale_temps(run_dir)
        save_config(cfg, run_dir / "config.yaml")
    total = cfg.optim.epochs * sampler.steps_per_epoch
    loader = DataLoader(
        dataset,
        batch_size=cfg.optim.batch_size,
        sampler=sampler,
        drop_last=True,
        generator=generator(derive_seed(cfg.engine.seed, LOADER_SEED)),
        **loader_kwargs(cfg.data),
    )
    ctx = StepContext(
        model=distributed.wrap_ddp(model, info),
        optimizer=optimizer,
        scaler=scaler,
        curriculum=curriculum,
        device=info.device,
        amp_dtype=amp,
        clip_grad=cfg.optim.clip_grad,
        seed=cfg.engine.seed,
        micro_id=sampler.micro_id,
        prepare=functools.partial(gpu_decode.decode_batch, cfg=cfg.data) if cfg.data.decode == "gpu" else None,
    )
    return Run(
        cfg=cfg,
        info=info,
        run_dir=run_dir,
        loader=loader,
        sampler=sampler,
        schedule=Schedule.from_config(cfg.optim, info.world_size, sampler.steps_per_epoch),
        ctx=ctx,
        num_classes=dataset.num_classes,
        start_step=start,
        stop_step=total if max_steps is None else min(total, max_steps),
        nonfinite=nonfinite,
        meter_state=meter_state,
    )


def seed_global_rngs(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (model init, stochastic depth, and
    anything a library draws from them), so two identical runs hold identical RNG states."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def loop(run: Run) -> dict:
    """Draw the curriculum (RUN/curriculum.png, its path said once), then step from run.start_step
    to run.stop_step, logging, drawing and checkpointing on schedule."""
    eng, spe = run.cfg.engine, run.sampler.steps_per_epoch
    logger = RunLogger(
        run.run_dir,
        enabled=run.info.is_main,
        start_step=run.start_step,
        stop_step=run.stop_step,
        tensorboard=eng.tensorboard,
        progress=eng.progress,
        keep_record=run.is_regular_record,
    )
    meter, step, last, stopped = Meter(), run.start_step, {}, False
    if run.meter_state is not None:
        meter.load_state_dict(run.meter_state, run.info.device)
    try:
        if run.info.is_main:
            _draw_curriculum(run, logger)
        while step < run.stop_step and not stopped:  # one pass per (part of an) epoch
            epoch, in_epoch = divmod(step, spe)
            run.sampler.set_epoch(epoch, in_epoch)
            batches, end = iter(run.loader), min(run.stop_step, (epoch + 1) * spe)
            while step < end and not stopped:
                micro = meter.wait(functools.partial(_next_micro, batches, run.cfg.optim.accum_iter, step))
                lr = run.schedule.apply(run.ctx.optimizer, step)
                probe = eng.loss_probe and run.is_regular_record(step + 1)
                result = train_step(run.ctx, micro, step, step / run.schedule.total_steps, probe)
                _count_nonfinite(run, result.finite, step)
                step = step + 1
                meter.add(result.losses, result.finite)
                last = _after_step(run, logger, meter, step, lr, result) or last
                stopped = result.stop and step < run.stop_step
    finally:
        logger.close()
        # The workers stop now, not at a later garbage collection: an exception that a drawing
        # caught can keep this frame, and so the loader's iterator, alive in a reference cycle.
        batches = run.loader = None
    if run.info.is_main:
        _draw_losses(run, logger)
    return _summary(run, logger, meter, step, last, stopped)


def _draw_curriculum(run: Run, logger: RunLogger) -> None:
    """RUN/curriculum.png: the masking weights over the whole schedule; its path said once."""
    total = run.schedule.total_steps
    plot = save_curriculum_plot(run.ctx.curriculum, run.run_dir / CURRICULUM_PLOT, total, run.stop_step)
    logger.message(f"c2f-train: masking curriculum over {total} steps drawn in {plot}")


def _draw_losses(run: Run, logger: RunLogger) -> None:
    """RUN/losses.png: the whole log.jsonl (earlier runs' records included) as curves. The run is
    saved by now: a picture that cannot be written is a warning, not the run's failure."""
    try:
        plot = save_loss_plot(run.run_dir / LOG_FILE, run.run_dir / LOSS_PLOT)
    except OSError as exc:
        logger.message(f"c2f-train: warning: {run.run_dir / LOSS_PLOT} not drawn ({one_line(exc)})")
        return
    if plot is not None:
        logger.message(f"c2f-train: losses over the run drawn in {plot}")


def _next_micro(batches, accum_iter: int, step: int) -> list:
    """The next `accum_iter` batches; a file that went bad since the run started is one clear error."""
    try:
        return [next(batches) for _ in range(accum_iter)]
    except (OSError, ValueError, StoreError) as exc:  # from a loader worker: its traceback as text
        reason = one_line(exc, last=True)
        exc.__traceback__ = None  # its frames hold the loader: let it stop its workers when the run ends
        raise TrainingError(
            f"reading the data for step {step + 1} failed: {reason}; "
            "fix or restore the file, then rerun to resume from the latest checkpoint"
        ) from None


def _after_step(run: Run, logger: RunLogger, meter: Meter, done: int, lr: float, result: StepResult) -> dict | None:
    """Log / draw / checkpoint after `done` optimizer steps; returns the record when one was logged."""
    eng, record = run.cfg.engine, None
    save = done % eng.checkpoint_every == 0 or done == run.stop_step or result.stop
    regular = run.is_regular_record(done)
    # A record forced by a --max-steps stop is not one an uninterrupted run writes: the checkpoint
    # keeps the sums from before it, and a resume drops it from the log. A stop on SIGTERM
    # (result.stop) writes a checkpoint and no record.
    unlogged = meter.state_dict() if save and not regular else None
    if regular or done == run.stop_step:
        record = _record(run, meter, done, lr, result)
        logger.record(record)
    logger.advance(record["loss"] if record else None)
    if run.info.is_main and eng.image_every and done % eng.image_every == 0:
        _draw(run, logger, done, result)
    if save:
        _save(
            run,
            done,
            keep=bool(eng.keep_every) and done % eng.keep_every == 0,
            meter_state=meter.state_dict() if regular else unlogged,
        )
    return record


def _draw(run: Run, logger: RunLogger, done: int, result: StepResult) -> None:
    """The reconstruction grid of this step: RUN/images/step-N.png and TensorBoard's image tag."""
    pictures = draw_predictions(run.cfg.model, result.batch, result.out)
    grid = draw_grid(
        result.batch, {"mask": result.out["mask"], "pred": pictures}, mean=run.cfg.data.mean, std=run.cfg.data.std
    )
    write_png(run.run_dir / "images" / f"step-{done:07d}.png", grid)
    logger.image(GRID_TAG, grid, done)


def _record(run: Run, meter: Meter, done: int, lr: float, result: StepResult) -> dict:
    """The log.jsonl record after `done` steps: losses are means over the finite steps since the
    last record (this step's, if none was finite) and over processes; weights and the loss probe
    (`engine.loss_probe`: gradient shares, per-strategy losses) are this step's."""
    losses = meter.mean_losses() or result.losses
    names = sorted(losses)
    values = distributed.all_mean(torch.stack([losses[n] for n in names]).float()).tolist()
    w = run.ctx.curriculum.weights((done - 1) / run.schedule.total_steps)
    images = meter.steps * effective_batch(run.cfg.optim, run.info.world_size)
    elapsed, wait = meter.lap()
    return {
        "step": done,
        "epoch": (done - 1) // run.sampler.steps_per_epoch,
        **dict(zip(names, values)),
        "lr": lr,
        "w_semantic": w[0],
        "w_instance": w[1],
        "w_random": w[2],
        "images_per_s": images / max(elapsed, 1e-9),
        "data_wait": wait / max(elapsed, 1e-9),
        "nonfinite": run.nonfinite,
        **({"grad_norm": result.grad_norm} if result.grad_norm is not None else {}),
        **result.probe,
    }


def _count_nonfinite(run: Run, finite: bool, step: int) -> None:
    if finite:
        return
    run.nonfinite += 1
    log.warning("non-finite loss at step %d: update skipped (%d so far)", step, run.nonfinite)
    if run.nonfinite > run.cfg.engine.max_nonfinite:
        raise TrainingError(
            f"loss was non-finite on {run.nonfinite} steps, more than "
            f"engine.max_nonfinite={run.cfg.engine.max_nonfinite} (last at step {step}); "
            "try a lower optim.blr, optim.clip_grad, or engine.amp=bf16"
        )


def _save(run: Run, done: int, keep: bool, meter_state: dict) -> None:
    if run.info.is_main:
        state = make_state(
            model=distributed.unwrap(run.ctx.model),
            optimizer=run.ctx.optimizer,
            scaler=run.ctx.scaler,
            config=to_dict(run.cfg),
            step=done,
            nonfinite=run.nonfinite,
            num_classes=run.num_classes,
            meter=meter_state,
        )
        save_checkpoint(run.run_dir, state, keep=keep)
    distributed.barrier()


def _resume(cfg: TrainConfig, run_dir: Path, model, optimizer, scaler) -> tuple[int, int, dict | None]:
    """Restore RUN_DIR's newest readable checkpoint; returns (step, non-finite count, the log's
    running sums), (0, 0, None) if there is none."""
    found = load_checkpoint(run_dir) if run_dir.is_dir() else None
    if found is None:
        return 0, 0, None
    state, path = found
    check_compatible(state, model, to_dict(cfg.model), path)
    _warn_changes(state["config"], to_dict(cfg))
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state["scaler"] is not None:
            scaler.load_state_dict(state["scaler"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise TrainingError(f"checkpoint {path} does not fit this run: {one_line(exc)}") from None
    restore_rng(state["rng"])
    log.info("resuming from %s at step %d", path, state["step"])
    return int(state["step"]), int(state["nonfinite"]), state.get("meter")


def _warn_changes(old: dict, new: dict) -> None:
    """One warning naming the settings (outside engine.*) that differ from the checkpoint's."""
    changed = [k for k in _diff(old, new) if not k.startswith("engine.")]
    if changed:
        log.warning("resuming with settings changed since the checkpoint: %s", ", ".join(changed[:8]))


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def _dataset(cfg: TrainConfig, data: Path | str, images: Path):
    """The store's done images as a dataset; store and image-root problems become TrainingError."""
    try:
        return build_dataset(cfg.data, data, images, cfg.engine.seed)
    except (StoreError, ValueError, OSError) as exc:
        raise TrainingError(one_line(exc)) from None


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: bf16/fp16 on CUDA as configured; the CPU always runs fp32 (None)."""
    if device.type != "cuda" or amp == "off":
        return None
    return torch.bfloat16 if amp == "bf16" else torch.float16


def _summary(run: Run, logger: RunLogger, meter: Meter, step: int, last: dict, stopped: bool) -> dict:
    ran = meter.total_steps + meter.steps
    seconds = time.perf_counter() - meter.start
    images = ran * effective_batch(run.cfg.optim, run.info.world_size)
    summary = {
        "step": step,
        "steps_run": ran,
        "seconds": seconds,
        "images_per_s": images / max(seconds, 1e-9),
        "loss": last.get("loss"),
        "nonfinite": run.nonfinite,
        "run_dir": str(run.run_dir),
        "stopped": stopped,
    }
    loss = f"{summary['loss']:.4f}" if summary["loss"] is not None else "n/a"
    logger.message(
        f"c2f-train: {'stopped (SIGTERM)' if stopped else 'done'}: "
        f"step {step}/{run.schedule.total_steps} ({ran} this run) in "
        f"{seconds:.1f}s, {summary['images_per_s']:.1f} images/s, loss {loss}, "
        f"{run.nonfinite} non-finite steps skipped; checkpoint {run.run_dir / 'latest.pt'}"
    )
    return summary
