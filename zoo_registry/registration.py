"""What a plugin's registration must look like: names, lazy targets and resource references.

Every ``register(...)`` callback a hook receives checks its arguments with these before anything is
kept, so a bad registration fails its plugin with a message that names the plugin and the hook.
"""

from __future__ import annotations

import json
import re

from .errors import PluginError
from .resources import resource_path

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
RESOURCE = re.compile(r"^[A-Za-z_][\w.]*:[^:]+$")


def check_name(name, where, what):
    if not isinstance(name, str) or not NAME.match(name):
        raise PluginError(f"{where}: {what} {name!r} must be a non-empty string of letters, digits, '_', '.', '-'")


def check_names(names, where, field, what):
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise PluginError(f"{where}: {field} must be a list of strings, got {names!r}")
    for name in names:
        check_name(name, where, what)


def check_target(target, where, what):
    if not isinstance(target, str) or not TARGET.match(target):
        raise PluginError(f"{where}: {what} {target!r} must be a lazy reference 'package.module:attr'")


def check_description(description, where, name):
    if not isinstance(description, str):
        raise PluginError(f"{where}: description of {name!r} must be a string")


def check_resource(ref, where, what, suffix):
    if not isinstance(ref, str) or not RESOURCE.match(ref):
        raise PluginError(f"{where}: {what} {ref!r} must be a resource reference 'package:path/file'")
    if not ref.endswith(suffix):
        raise PluginError(f"{where}: {what} {ref!r} must end with {suffix}")
    path = resource_path(ref)
    if not path.is_file():
        raise PluginError(f"{where}: {what} {ref!r} not found at {path}")
    if ref.endswith(".json"):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise PluginError(f"{where}: {what} {path} is not valid JSON: {e}") from None
