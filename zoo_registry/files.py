"""Read YAML and JSON files that may come from strangers.

YAML is parsed with a safe loader only (no Python object tags), with a cap on aliases so that an
anchor "billion laughs" file cannot exhaust memory, and a cap on file size. Errors name the file
and the line. Inputs that would make the parsers themselves fail with a non-zoo error are turned
into :class:`ConfigError` too: nesting deep enough to exhaust Python's recursion limit, integers
longer than Python's 4300-digit conversion limit, symbolic links that loop or point nowhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from .errors import CheckpointNotFoundError, ConfigError

MAX_TEXT_BYTES = 8 * 1024 * 1024  # configs, cards and rule files are a few KB
MAX_ALIASES = 100
TOO_DEEP = "nested too deeply (more levels than Python's recursion limit)"


class _BoundedSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses documents with more than ``MAX_ALIASES`` aliases."""

    def __init__(self, stream):
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(f"more than {MAX_ALIASES} YAML aliases (line {mark.line + 1}); refusing a possible alias bomb")
        return super().compose_node(parent, index)


def describe_missing(path: Path, what: str) -> str:
    """Why ``path`` cannot be read as a file: missing, a directory, a dangling or looping symlink."""
    path = Path(path)
    if os.path.islink(path):
        try:
            path.resolve(strict=True)
        except RuntimeError:  # Python < 3.13 reports a loop as RuntimeError
            return f"{path}: {what} is a symbolic link that loops back on itself"
        except OSError as e:
            if getattr(e, "errno", None) == 40:  # ELOOP
                return f"{path}: {what} is a symbolic link that loops back on itself"
            return f"{path}: {what} is a symbolic link to {os.readlink(path)!r}, which does not exist"
    if path.is_dir():
        return f"{path}: {what} is a directory, not a file"
    if path.exists() and not path.is_file():
        return f"{path}: {what} is not a regular file"
    return f"{path}: {what} not found"


def _read_text(path: Path, what: str) -> str:
    path = Path(path)
    if not path.is_file():
        problem = describe_missing(path, what)
        if problem.endswith("not found"):
            raise CheckpointNotFoundError(problem)
        raise ConfigError(problem)
    size = path.stat().st_size
    if size > MAX_TEXT_BYTES:
        raise ConfigError(f"{path}: {what} is {size} bytes; refusing files over {MAX_TEXT_BYTES} bytes",
                          hint="configs, cards and rule files are a few KB; check that this is the right file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: {what} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read {what}: {e.strerror or e}") from None


def read_yaml(path, what: str = "YAML file") -> Any:
    """Parse a YAML file safely; raise :class:`ConfigError` naming the file and line."""
    text = _read_text(path, what)

    def parse():
        try:
            return yaml.load(text, Loader=_BoundedSafeLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark
            where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
            raise ConfigError(f"{path}{where}: invalid YAML: {e.problem or e}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {e}") from None

    return _parse(path, "YAML", parse)


def read_json(path, what: str = "JSON file") -> Any:
    """Parse a JSON file; raise :class:`ConfigError` naming the file, line and column."""
    text = _read_text(path, what)

    def parse():
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None

    return _parse(path, "JSON", parse)


def _parse(path, language: str, parse) -> Any:
    """``parse()``, with what makes any parser fail outside its own errors reported as a :class:`ConfigError`."""
    try:
        return parse()
    except ConfigError:
        raise
    except RecursionError:
        raise ConfigError(f"{path}: invalid {language}: {TOO_DEEP}") from None
    except ValueError as e:  # e.g. an integer beyond Python's int-string conversion limit
        raise ConfigError(f"{path}: invalid {language}: {_value_problem(e)}") from None


def _value_problem(error: ValueError) -> str:
    text = str(error)
    if "integer string conversion" in text:
        return "a number has more digits than Python converts (4300); no real config needs such a number"
    return text
