"""The boundary shared by c2f-data, c2f-label and c2f-train: one-line errors, exit codes, logging.

Each command's `main()` parses its arguments and calls library functions inside `run`, which
turns what a user can cause into one line on stderr, `PROG: error: ...`, never a traceback:

    0    success
    1    the command ran and found problems (validate, verify; a label job that left shards pending)
    2    a usage, input or environment error: bad arguments or config, a missing or damaged store,
         an unreadable input, a full or read-only disk, an unreachable cluster
    75   a temporary failure (sysexits' EX_TEMPFAIL): object storage kept failing with transient
         faults through all retries (`errors.Unavailable`, or an error raised while handling one);
         nothing is lost, and the line says what to rerun once it is reachable
    130  interrupted (Ctrl-C, SIGINT); the line says what to run to resume, where a rerun resumes
    143  terminated (SIGTERM: Kubernetes, Slurm, spot preemption, `ray job stop`) after saving the
         work's state: the body raises `Terminated`; the line says where it stopped and the resume line

Diagnostics go through `logging` as `PROG: warning: ...` lines; `setup_logging` sets them up once.
This module never imports torch or Ray: the package errors of labeling and training are passed in.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shlex
import sys
from collections.abc import Callable, Sequence

from .errors import ConfigError, from_outage

OK, PROBLEMS, USAGE, UNAVAILABLE, INTERRUPTED, TERMINATED = 0, 1, 2, 75, 130, 143
LOG_LEVEL_ENV = "C2F_LOG_LEVEL"  # DEBUG, INFO, WARNING (default) or ERROR; -v / -vv win over it
PACKAGES = ("plumbing", "datasets_spec", "dataset_tools", "labeling", "training")
DISK_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT)  # an output disk refused a write


class UsageError(Exception):
    """A command line that cannot be used (argparse's complaint, a flag out of range)."""


class Terminated(BaseException):
    """The work stopped on SIGTERM with its state saved; the message says where (e.g. "at step 5").

    A BaseException, as KeyboardInterrupt is, so that no `except Exception` on the way swallows it.
    """


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are raised as UsageError, so `run` prints them as one line."""

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")


def run(
    prog: str,
    body: Callable[[], int],
    *,
    errors: tuple[type[BaseException], ...] = (),
    resume: Sequence[str] | None = None,
) -> int:
    """`body()`'s exit code, or 2 / 75 / 130 / 143 with one line on stderr for what a user can cause.

    errors: the exception types a user can cause beyond usage and config errors (StoreError, LabelingError, ...).
    resume: the command line that resumes the work after an interrupt or an outage (c2f-label, c2f-train).
    """
    hint = f"; to resume, run: {shlex.join(resume)}" if resume else ""
    try:
        return body()
    except KeyboardInterrupt:
        say(f"{prog}: interrupted{hint}")
        return INTERRUPTED
    except Terminated as exc:
        where = f" {exc}" if str(exc) else ""
        say(f"{prog}: terminated{where}{hint}")
        return TERMINATED
    except (UsageError, ConfigError, *errors, OSError) as exc:
        if from_outage(exc):
            hint = f"; to resume once it is reachable, run: {shlex.join(resume)}" if resume else ""
            error(prog, f"{exc}{hint}")
            return UNAVAILABLE
        # an OSError: a file system or network refusal, named by its path where it has one
        error(prog, os_error_line(exc) if isinstance(exc, OSError) else str(exc))
    return USAGE


def error(prog: str, message: str) -> None:
    """`PROG: error: message` on stderr, folded onto one line."""
    say(f"{prog}: error: {' '.join(message.split()) or 'unknown error'}")


def say(line: str) -> None:
    """`line` on stderr in one write, newline included: the ranks of a torchrun job share the
    stream, and print's separate write of the newline let their lines run together."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def os_error_line(exc: OSError) -> str:
    """`path: No space left on device`; the OS's reason without Python's `[Errno N]`."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{exc.filename}: {reason}" if exc.filename is not None else reason


def format_counts(counts: dict[str, int]) -> str:
    """{"nms": 3, "overlap": 1} → "nms ×3; overlap ×1": counts by reason (failures, dropped instances)."""
    return "; ".join(f"{reason} ×{count}" for reason, count in counts.items())


def add_verbose_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help=f"more diagnostics: -v info, -vv debug (or set {LOG_LEVEL_ENV})",
    )


def add_set_flag(parser: argparse.ArgumentParser, example: str) -> None:
    """`--set KEY=VALUE`, repeatable, into `args.overrides` (a list of strings)."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config key, e.g. --set {example} (repeatable)",
    )


def setup_logging(prog: str, verbose: int = 0, default: int = logging.WARNING) -> None:
    """One stderr handler on the root logger, `PROG: level: message`, replacing an earlier one.

    Our packages log at `default` (or what -v / C2F_LOG_LEVEL ask for); other libraries at warning.
    """
    level = _level(verbose, default)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(_Formatter(f"{prog}: %(levelname)s: %(message)s"))
    handler.addFilter(lambda record: record.levelno >= (level if _ours(record.name) else logging.WARNING))
    root.addHandler(handler)
    root.setLevel(min(level, logging.WARNING))


def _ours(name: str) -> bool:
    return name.split(".", 1)[0] in PACKAGES


def _level(verbose: int, default: int) -> int:
    if verbose:
        return logging.DEBUG if verbose > 1 else min(logging.INFO, default)
    name = os.environ.get(LOG_LEVEL_ENV, "").strip().upper()
    if not name:
        return default
    if name not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise UsageError(f"{LOG_LEVEL_ENV}={name}: expected DEBUG, INFO, WARNING or ERROR")
    return getattr(logging, name)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of the record (pytest swaps it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord({**record.__dict__, "levelname": record.levelname.lower()})
        return super().format(record)
