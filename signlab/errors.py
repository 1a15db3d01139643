"""The error types signlab raises for bad input: each carries one line a person can act on.

The command line turns these into exit code 2 with the message on stderr; the dashboard shows the
message in the page. Anything else escaping is a bug (exit code 1).
"""
from __future__ import annotations


class SignlabError(Exception):
    """Base class: bad input or a state the user can fix. ``str(err)`` is the whole message."""


def error_words(err: BaseException) -> str:
    """An error as a run's message or a page says it: a SignlabError's own line, anything else named by
    its type (``RuntimeError: size mismatch …``), since its text alone may not say what went wrong."""
    return str(err) if isinstance(err, SignlabError) else f"{type(err).__name__}: {err}"


class DataError(SignlabError):
    """A dataset file is missing, unreadable or malformed (names the file, row and column)."""


class ImageError(SignlabError):
    """An uploaded or given image cannot be used (names the file and the problem)."""


class ConfigError(SignlabError):
    """A training setting is out of range or unknown (names the setting and the allowed range)."""


class RunError(SignlabError):
    """A run id or run directory is invalid, missing, unsafe or unreadable."""


class QuotaError(SignlabError):
    """A start would go past a quota on a shared server (says which, the numbers, and what would fit)."""
