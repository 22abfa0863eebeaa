"""What a plugin's registration must look like: names, lazy targets and resource references.

Every ``register(...)`` callback a hook receives checks its arguments with these before anything is
kept, so a bad registration fails its plugin with a message that names the plugin and the hook.
"""

from __future__ import annotations

import json
import re

from .errors import PluginError, did_you_mean
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


# -- the register(...) callbacks ------------------------------------------------------------------


def callback(method, where: str):
    """``method`` as a plugin's ``register`` callback: a wrong keyword or argument count is a
    :class:`PluginError` naming the plugin and hook (``where``), with "did you mean" for a misspelt
    keyword, instead of Python's bare ``TypeError``."""
    import functools
    import inspect

    signature = inspect.signature(method)
    keywords = [name for name, p in signature.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    @functools.wraps(method)
    def register(*args, **kwargs):
        try:
            signature.bind(*args, **kwargs)
        except TypeError as e:
            unknown = [k for k in kwargs if k not in keywords]
            usage = f"register{signature}"
            if unknown:
                key = unknown[0]
                raise PluginError(
                    f"{where}: register() got an unknown keyword {key!r}{did_you_mean(key, keywords)}",
                    hint=f"the callback's signature is {usage}",
                ) from None
            raise PluginError(f"{where}: {e}", hint=f"the callback's signature is {usage}") from None
        return method(*args, **kwargs)

    return register


# -- schema descriptions ----------------------------------------------------------------------------

_BRANCHES = ("allOf", "anyOf", "oneOf")
_SUBSCHEMAS = ("if", "then", "else", "not")


def undescribed_properties(schema) -> list:
    """Property paths of a config schema that no declaration describes (``$.a.b``, sorted).

    Walks ``properties`` and ``patternProperties`` of every object, through local ``$ref``s (so
    ``$defs`` are covered where they are used), ``allOf``/``anyOf``/``oneOf`` and ``if``/``then``/
    ``else`` branches, ``items`` and ``additionalProperties``. A property counts as described when
    any of its declarations (or the definition it refers to) has a ``description``: a branch that
    only restates a constraint on a documented key needs none. References outside the schema (zoo's
    base schema) are not followed.
    """
    if not isinstance(schema, dict):
        return []
    described = {}

    def resolve(node):
        ref = node.get("$ref") if isinstance(node, dict) else None
        if not (isinstance(ref, str) and ref.startswith("#/")):
            return None
        target = schema
        for part in ref[2:].split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(target, dict) else None
        return target if isinstance(target, dict) else None

    def has_description(node, depth=0):
        if not isinstance(node, dict) or depth > 16:
            return False
        if isinstance(node.get("description"), str) and node["description"].strip():
            return True
        return has_description(resolve(node), depth + 1)

    def walk(node, path, seen):
        if not isinstance(node, dict):
            return
        ref = node.get("$ref")
        if isinstance(ref, str) and (ref, path) not in seen:
            target = resolve(node)
            if target is not None:
                walk(target, path, seen | {(ref, path)})
        for kind in ("properties", "patternProperties"):
            for key, sub in (node.get(kind) or {}).items():
                child = f"{path}.{key}" if kind == "properties" else f"{path}./{key}/"
                if sub is False:
                    continue  # a key the schema forbids needs no description
                described[child] = described.get(child, False) or has_description(sub)
                walk(sub, child, seen)
        for kind in _BRANCHES:
            for sub in node.get(kind) or []:
                walk(sub, path, seen)
        for kind in _SUBSCHEMAS:
            walk(node.get(kind), path, seen)
        for sub in (node.get("dependentSchemas") or {}).values():
            walk(sub, path, seen)
        walk(node.get("items"), path + "[]", seen)
        walk(node.get("additionalProperties"), path + ".*", seen)

    walk(schema, "$", frozenset())
    return sorted(path for path, ok in described.items() if not ok)


def check_schema_descriptions(ref: str, where: str) -> None:
    """Refuse a config schema with a property that has no ``description`` (``zoo info`` prints them)."""
    schema = json.loads(resource_path(ref).read_text(encoding="utf-8"))
    missing = undescribed_properties(schema)
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise PluginError(
            f"{where}: config_schema {ref!r}: every property needs a \"description\"; missing at {shown}",
            hint="add a \"description\" to each of these properties (or to the $defs entry they $ref); "
                 "`zoo info MODEL_TYPE` prints them for your users",
        )
