"""The one exception type of c2f-train; the CLI turns it into a one-line message and exit code 2."""


class TrainingError(Exception):
    """A user-facing training problem (bad config, bad store, unreadable checkpoint, diverged run)."""
