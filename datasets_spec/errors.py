"""The one exception type of datasets_spec; the CLI turns it into a one-line message."""


class StoreError(Exception):
    """A store cannot be created, opened, read or written as asked. The message names the path."""


class ConfigError(Exception):
    """A bad config file, key, value or override; the message is one line naming the file/key."""
