"""The one exception type of the labeling package; the CLI turns it into a one-line message."""


class LabelingError(Exception):
    """An input, a backend or a parameter cannot be used as asked.

    Raised for a whole-job problem (unknown backend, bad image root) and for one image that cannot
    be labeled (the message is then a short reason such as "truncated image file", which the
    pipeline records as that image's failure).
    """
