"""The errors shared by the three commands (the CLI boundary turns them into one-line messages):
ConfigError, Unavailable; `one_line`, the one way any package folds a caught exception into a
message a user reads; and `did_you_mean`, the hint after an unknown name."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence


class ConfigError(Exception):
    """A bad config file, key, value or override; the message is one line naming the file/key."""


class Unavailable(OSError):
    """A service the command needs (object storage) kept failing with transient faults through all
    its retries: nothing the user asked for was wrong, and rerunning later resumes the work. The
    message is one line naming what could not be reached and the last error."""


def from_outage(exc: BaseException | None) -> bool:
    """Whether `exc` is an Unavailable or was raised while handling one: a wrapper such as
    StoreError("…: cannot create store (…)") keeps its cause as `__context__`, even `from None`."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, Unavailable):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def one_line(exc: BaseException, *, last: bool = False, named: bool = False, limit: int = 300) -> str:
    """`exc`'s message as one line: its first non-empty line, stripped, at most `limit` characters.

    The first line says what failed (tensorstore's, torch's and transformers' errors run on with
    detail); `last=True` takes the last non-empty line instead, for an error whose message is another
    process's traceback (a DataLoader worker's, a Ray task's), which ends with the exception line.
    An empty message (`OSError()`) gives the class name, never an IndexError. `named=True` puts the
    class name first: `EOFError: Ran out of input`, or just `EOFError`. Only `exc`'s own message is
    read, not the exception it was raised from.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    kind = type(exc).__name__
    if not lines:
        return kind[:limit]
    text = lines[-1] if last else lines[0]
    return (f"{kind}: {text}" if named else text)[:limit]


def did_you_mean(name: str, names: Sequence[str], valid: str, show: Callable[[str], str] = str) -> str:
    """The hint "did you mean 'x'?" for the one of `names` closest to `name`, or "VALID: a, b, c" when none
    is close; `show` writes a name as the user would (e.g. as a dotted key)."""
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f"did you mean {show(close[0])!r}?" if close else f"{valid}: {', '.join(map(show, names))}"
