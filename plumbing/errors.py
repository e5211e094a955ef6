"""The config error shared by the three commands; the CLI boundary turns it into a one-line message."""


class ConfigError(Exception):
    """A bad config file, key, value or override; the message is one line naming the file/key."""
