"""Three channels for a training run: log.jsonl (machines), TensorBoard (plots and the
reconstruction grids), a tqdm bar (people).

Only rank 0 writes. A resumed run first drops log records past its checkpoint's step, and a
record at that step that an uninterrupted run would not have written (the forced last record of a
`--max-steps` stop); TensorBoard purges the same steps. The checkpoint carries the `Meter`'s sums
since the last record, so the first record after a resume averages the same steps as an
uninterrupted run's: the log is identical whatever the intervals and wherever the run was stopped.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from tqdm import tqdm

from plumbing.files import atomic_write

LOG_FILE = "log.jsonl"
TB_DIR = "tensorboard"


class RunLogger:
    """Writes one record per logged step to every enabled channel; inert on ranks other than 0."""

    def __init__(
        self,
        run_dir: Path,
        *,
        enabled: bool,
        start_step: int,
        stop_step: int,
        tensorboard: bool,
        progress: bool,
        keep_record: Callable[[int], bool],
    ):
        self.enabled = enabled
        self.path = Path(run_dir) / LOG_FILE
        self.writer = None
        self.bar = None
        if not enabled:
            return
        truncate_log(self.path, start_step, keep_record)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = start_step + 1 if keep_record(start_step) else start_step
            self.writer = SummaryWriter(str(Path(run_dir) / TB_DIR), purge_step=purge)
        if progress:
            self.bar = tqdm(
                total=stop_step, initial=start_step, unit="step", dynamic_ncols=True, file=sys.stderr, desc="c2f-train"
            )

    def advance(self, loss: float | None = None) -> None:
        """One optimizer step done (progress bar only)."""
        if self.bar is not None:
            self.bar.update(1)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def record(self, record: dict) -> None:
        """Append `record` (must hold 'step') to log.jsonl and TensorBoard; NaN/inf become null."""
        if not self.enabled:
            return
        record = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for name, value in record.items():
                if name != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(name, value, record["step"])

    def image(self, tag: str, rgb, step: int) -> None:
        """An RGB uint8 picture [H, W, 3] to TensorBoard under `tag` at `step` (when enabled)."""
        if self.writer is not None:
            self.writer.add_image(tag, rgb, step, dataformats="HWC")

    def message(self, text: str) -> None:
        """A line for people on stdout, above the progress bar."""
        if self.enabled:
            tqdm.write(text, file=sys.stdout)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


class Meter:
    """Steps, wall time, data-wait time and loss sums since the last log record."""

    def __init__(self) -> None:
        self.start = self.mark = time.perf_counter()
        self.waited, self.steps, self.total_steps = 0.0, 0, 0
        self.sums: dict[str, torch.Tensor] = {}
        self.finite_steps = 0

    def add(self, losses: dict[str, torch.Tensor], finite: bool) -> None:
        """Count one step; its losses (device scalars, no sync) join the means if finite."""
        self.steps += 1
        if finite:
            self.finite_steps += 1
            for name, value in losses.items():
                self.sums[name] = self.sums.get(name, 0) + value

    def state_dict(self) -> dict:
        """The sums since the last record (what a checkpoint must carry for an identical log)."""
        return {
            "steps": self.steps,
            "finite_steps": self.finite_steps,
            "sums": {
                name: value.detach().cpu() if torch.is_tensor(value) else value for name, value in self.sums.items()
            },
        }

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.steps, self.finite_steps = int(state["steps"]), int(state["finite_steps"])
        self.sums = {
            name: value.to(device) if torch.is_tensor(value) else value for name, value in state["sums"].items()
        }

    def mean_losses(self) -> dict[str, torch.Tensor]:
        return {name: total / self.finite_steps for name, total in self.sums.items()}

    def wait(self, fetch):
        t0 = time.perf_counter()
        value = fetch()
        self.waited += time.perf_counter() - t0
        return value

    def lap(self) -> tuple[float, float]:
        """(elapsed, waited) since the previous lap; resets the interval."""
        now = time.perf_counter()
        out = (now - self.mark, self.waited)
        self.mark, self.waited, self.total_steps, self.steps = now, 0.0, self.total_steps + self.steps, 0
        self.sums, self.finite_steps = {}, 0
        return out


def truncate_log(path: Path, step: int, keep_record: Callable[[int], bool] = lambda s: True) -> None:
    """Keep the records of log.jsonl before `step`, and the one at `step` if `keep_record(step)`;
    a torn last line goes. Rewritten through a temporary file and a rename: a kill at any moment
    leaves either the old log or the new one."""
    if not path.exists():
        return
    kept = [line for line, r in _lines(path) if r["step"] < step or (r["step"] == step and keep_record(step))]
    atomic_write(path, "".join(line + "\n" for line in kept).encode())


def read_records(path: Path) -> list[dict]:
    """The records of a log.jsonl, in order; a line cut short by a crash is skipped."""
    return [record for _, record in _lines(path)]


def _lines(path: Path) -> Iterator[tuple[str, dict]]:
    """(line, record) for each whole record of log.jsonl: a torn or foreign line is skipped."""
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "step" in record:
            yield line, record
