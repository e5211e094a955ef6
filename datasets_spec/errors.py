"""The one exception type of datasets_spec; the CLI turns it into a one-line message."""


class StoreError(Exception):
    """A store cannot be created, opened, read or written as asked. The message names the path."""
