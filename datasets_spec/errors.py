"""The exception types of datasets_spec; the CLI turns them into one-line messages."""

from plumbing.errors import Unavailable


class StoreError(Exception):
    """A store cannot be created, opened, read or written as asked. The message names the path."""


class StorageUnavailable(Unavailable):
    """Object storage kept failing with transient faults (resets, timeouts, 5xx, throttling)
    through every retry (`datasets_spec.retries`); the message names the object and the last error."""
