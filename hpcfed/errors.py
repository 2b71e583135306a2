"""The one error family that hpcfed raises for bad user input.

Every user-facing failure (a bad job key, a missing data file, an unwritable output path) is an
:class:`HpcfedError`; the entry point prints its message as one line and exits with status 2.
"""


class HpcfedError(Exception):
    """Base class of errors caused by user input; the message is one line naming the bad value."""


class ConfigError(HpcfedError):
    """A job file or override is malformed, of the wrong type or out of range."""


class DataError(HpcfedError):
    """A data set is missing, unreadable or of the wrong format."""


def one_line(error: BaseException) -> str:
    """An exception's message on one line (a library's multi-line text folded), or its type's name."""
    return " ".join(str(error).split()) or type(error).__name__
