"""One exception family for everything a user can get wrong.

Every error zoo raises on purpose derives from :class:`ZooError`. Each subclass also derives from
the builtin exception a Python caller would expect (``KeyError`` for an unknown name,
``ValueError`` for a bad value, ``FileNotFoundError`` for a missing file), so ``except ValueError``
keeps working for code that does not know zoo.

The CLI prints ``str(error)`` and, when set, ``error.hint`` on a second line; it never prints a
traceback for a ``ZooError`` unless ``--debug`` is given.
"""

from __future__ import annotations

import difflib
from typing import Iterable, Optional


class ZooError(Exception):
    """Base class of every error zoo raises for bad input, configuration or plugins."""

    def __init__(self, message: str, hint: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.message


class ConfigError(ZooError, ValueError):
    """A config, card or rule file does not validate (schema or cross-field check)."""


class SchemaError(ConfigError):
    """A file failed JSON Schema validation; ``errors`` holds one line per problem."""

    def __init__(self, message: str, errors: Iterable[str] = (), hint: Optional[str] = None):
        super().__init__(message, hint)
        self.errors = list(errors)


class UnknownNameError(ZooError, KeyError):
    """An architecture, component, sanitize op or model card that nobody registered."""


class DuplicateNameError(ZooError, ValueError):
    """Two plugins registered the same name."""


class PluginError(ZooError, RuntimeError):
    """A plugin failed to import, raised inside a hook, or registered something invalid."""


class CheckpointError(ZooError, ValueError):
    """A checkpoint on disk is missing, unreadable or does not fit the model."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A file or folder that a checkpoint needs is not there."""


class WeightsMismatchError(CheckpointError):
    """Strict loading found missing, unexpected or mis-shaped tensors; ``report`` has the table."""

    def __init__(self, message: str, report=None, hint: Optional[str] = None):
        super().__init__(message, hint)
        self.report = report


class UnsafeInputError(ZooError, PermissionError):
    """The input asks zoo to do something it refuses to do (run code, unpickle, escape a folder)."""


class ZooWarning(UserWarning):
    """Something zoo went past on purpose but the user should hear about (an ignored ``auto_map``,
    tensors left out by ``strict=False``). The CLI prints these as ``zoo: warning: ...``."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest candidate, or an empty string."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
