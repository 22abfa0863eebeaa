"""Resolve the lazy references plugins register.

Two forms, both plain strings so that registering costs nothing:

- ``"package.module:attr"`` names a Python object; :func:`import_target` imports it on first use.
- ``"package:relative/path"`` names a data file shipped inside a package; :func:`resource_path`
  finds it without importing anything heavier than the package's ``__init__``.
"""

from __future__ import annotations

import importlib
import importlib.resources
from pathlib import Path

from .errors import PluginError, did_you_mean


def _split(ref: str, what: str):
    if not isinstance(ref, str) or ref.count(":") != 1 or ref.startswith(":") or ref.endswith(":"):
        raise PluginError(
            f"{what} {ref!r} is not of the form 'package.module:attr'",
            hint="plugins register lazy references as strings, e.g. 'myplugin.model:Model'",
        )
    return ref.split(":")


def import_target(ref: str):
    """Import ``"module:attr"`` (``attr`` may be dotted) and return the object."""
    module_name, attr = _split(ref, "target")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as e:
        raise PluginError(
            f"cannot import {module_name!r} (from {ref!r}): {e}",
            hint=f"install what {module_name!r} imports, or correct the 'module:attr' string the plugin registered",
        ) from e
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            close = did_you_mean(part, [n for n in dir(obj) if not n.startswith("_")])
            raise PluginError(
                f"module {module_name!r} has no attribute {attr!r} (from {ref!r})",
                hint=f"correct the 'module:attr' string the plugin registered{close}",
            ) from None
    return obj


def resource_path(ref: str) -> Path:
    """Return the filesystem path of ``"package:relative/path"`` (or of a plain path)."""
    if ":" not in ref or Path(ref).is_absolute():
        return Path(ref)
    package, rel = _split(ref, "resource")
    try:
        root = importlib.resources.files(package)
    except (ImportError, TypeError) as e:
        raise PluginError(f"cannot locate package {package!r} for resource {ref!r}: {e}") from e
    return Path(str(root.joinpath(rel)))
