"""The errors shared by the three commands; the CLI boundary turns them into one-line messages."""


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
