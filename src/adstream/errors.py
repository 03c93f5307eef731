"""The one exception type that reaches users as a single clear line."""


class AdstreamError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits non-zero.

    The message says what went wrong and what to do about it.
    """
