"""The one error family that hpcfed raises for bad user input, and the hint that suggests a fix.

Every user-facing failure (a bad job key, a missing data file, an unwritable output path) is an
:class:`HpcfedError`; the entry point prints its message as one line and exits with status 2.
"""
from __future__ import annotations


class HpcfedError(Exception):
    """Base class of errors caused by user input; the message is one line naming the bad value."""


class ConfigError(HpcfedError):
    """A job file or override is malformed, of the wrong type or out of range."""


class DataError(HpcfedError):
    """A data set is missing, unreadable or of the wrong format."""


def one_line(error: BaseException) -> str:
    """An exception's message on one line (a library's multi-line text folded), or its type's name."""
    return " ".join(str(error).split()) or type(error).__name__


def did_you_mean(word: str, accepted) -> str:
    """``" (did you mean 'x'?)"`` when one accepted name is within a typo of ``word`` (edit distance at most
    a quarter of its length, at least 1), else ``""``: a guess further off would mislead (fedprox is
    not a misspelt fedrolex)."""
    word = str(word)
    limit = max(1, len(word) // 4)
    distance, best = min(((edits(word, str(a)), str(a)) for a in accepted), default=(limit + 1, ""))
    return f" (did you mean {best!r}?)" if 0 < distance <= limit else ""


def edits(a: str, b: str) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions that turn ``a`` into ``b``."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]
