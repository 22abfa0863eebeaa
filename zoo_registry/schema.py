"""JSON Schema validation with errors a person can act on.

Each error reads ``FILE::$.path.to.key: message``. ``oneOf``/``anyOf`` failures report the best
matching branch (``jsonschema.exceptions.best_match``) instead of "is not valid under any of the
given schemas"; enum failures list the allowed values; an unknown key gets "did you mean" the
closest allowed name. jsonschema is imported here only, so listing commands never pay for it.

The framework's own schemas resolve by ``$id`` from any schema: an architecture schema extends the
keys every checkpoint may carry with ``{"$ref": CHECKPOINT_SCHEMA_ID, "unevaluatedProperties":
false}`` (``schemas/checkpoint.schema.json``) and declares only its own fields.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, List

from .errors import PluginError, SchemaError, did_you_mean
from .resources import resource_path

SCHEMA_DIR_CANDIDATES = (
    Path(__file__).parent / "schemas",  # installed: package_dir maps schemas/ here
    Path(__file__).parent.parent / "schemas",  # source checkout
)


CHECKPOINT_SCHEMA_ID = "https://zoo.invalid/schemas/checkpoint.schema.json"
FRAMEWORK_SCHEMAS = ("card", "checkpoint", "sanitize-rules")


def framework_schema_path(name: str) -> Path:
    """Path of one of the framework's own schemas (``card``, ``checkpoint``, ``sanitize-rules``)."""
    for folder in SCHEMA_DIR_CANDIDATES:
        path = folder / f"{name}.schema.json"
        if path.is_file():
            return path
    raise FileNotFoundError(f"zoo schema {name!r} is missing from the installation")


@lru_cache(maxsize=None)
def load_schema(ref: str) -> dict:
    """Load and check a schema given as a path or ``"package:path"``; cached per process."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError as _JSSchemaError

    path = resource_path(ref) if ":" in ref and not Path(ref).is_absolute() else Path(ref)
    where = str(path) if str(path) == ref else f"{path} ({ref})"
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise PluginError(f"schema {where} cannot be read: {e or type(e).__name__}") from None
    if not isinstance(schema, (dict, bool)):
        raise PluginError(f"schema {where} is not a valid JSON Schema (draft 2020-12): a schema is an object, got {type(schema).__name__}")
    try:
        Draft202012Validator.check_schema(schema)
    except _JSSchemaError as e:
        raise PluginError(f"schema {where} is not a valid JSON Schema (draft 2020-12): {e.message} at {_path(e.absolute_path)}") from None
    return schema


def checkpoint_schema() -> dict:
    """The keys every ``config.json`` may carry, whatever the architecture (``schemas/checkpoint.schema.json``)."""
    return load_schema(str(framework_schema_path("checkpoint")))


@lru_cache(maxsize=None)
def _framework_registry():
    """A ``referencing`` registry holding the framework's schemas under their ``$id``s."""
    from referencing import Registry as _RefRegistry, Resource

    resources = []
    for name in FRAMEWORK_SCHEMAS:
        schema = load_schema(str(framework_schema_path(name)))
        if isinstance(schema, dict) and schema.get("$id"):
            resources.append((schema["$id"], Resource.from_contents(schema)))
    return _RefRegistry().with_resources(resources)


def extends_checkpoint_schema(schema) -> bool:
    """Whether ``schema`` extends the framework's base (a ``$ref`` to it at the top or in ``allOf``)."""
    if not isinstance(schema, dict):
        return False
    refs = [schema.get("$ref")] + [s.get("$ref") for s in schema.get("allOf") or [] if isinstance(s, dict)]
    return CHECKPOINT_SCHEMA_ID in refs


def _declared_keys(schema, validator, depth: int = 0) -> tuple:
    """(property names, property patterns) a schema object declares, through ``$ref``/``allOf``/branches."""
    names, patterns = set(), set()
    if not isinstance(schema, dict) or depth > 8:
        return names, patterns
    names.update(schema.get("properties") or {})
    patterns.update(schema.get("patternProperties") or {})
    subs = list(schema.get("allOf") or []) + list(schema.get("anyOf") or []) + list(schema.get("oneOf") or [])
    subs += [schema[k] for k in ("then", "else") if isinstance(schema.get(k), dict)]
    subs += list((schema.get("dependentSchemas") or {}).values())
    if isinstance(schema.get("$ref"), str):
        try:
            subs.append(validator._resolver.lookup(schema["$ref"]).contents)
        except Exception:  # noqa: BLE001 - only used to word a message
            pass
    for sub in subs:
        n, p = _declared_keys(sub, validator, depth + 1)
        names |= n
        patterns |= p
    return names, patterns


def _path(parts: Iterable[Any]) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _describe(error, schema_root: dict, validator=None) -> List[str]:
    """One or more human lines for one jsonschema error."""
    from jsonschema.exceptions import best_match

    if error.validator in ("oneOf", "anyOf") and error.context:
        # Branches whose type does not even match the value are noise: report the branch that
        # fits the value's type (all of its errors), else jsonschema's best match.
        branches = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        fitting = [errs for errs in branches.values() if not any(e.validator == "type" and not e.relative_path for e in errs)]
        if len(fitting) == 1:
            lines = []
            for sub in fitting[0]:
                lines.extend(_describe(sub, schema_root, validator))
            return lines
        return _describe(best_match(error.context), schema_root, validator)
    where = _path(error.absolute_path)
    if error.validator == "additionalProperties" or error.validator == "unevaluatedProperties":
        names, patterns = _declared_keys(error.schema, validator)
        allowed = sorted(names)
        extras = sorted(set(error.instance) - names) if isinstance(error.instance, dict) else []
        lines = []
        for key in extras:
            if any(re.search(p, key) for p in patterns):
                continue
            lines.append(f"{where}.{key}: unknown key{did_you_mean(key, allowed)}")
        return lines or [f"{where}: {error.message}"]
    if error.validator == "enum":
        allowed = ", ".join(sorted(repr(v) for v in error.validator_value))
        return [f"{where}: expected one of {allowed} but got {error.instance!r}"]
    if error.validator == "const":
        return [f"{where}: expected {error.validator_value!r} but got {error.instance!r}"]
    if error.validator == "required":
        missing = [k for k in error.validator_value if isinstance(error.instance, dict) and k not in error.instance]
        return [f"{where}.{k}: required key is missing" for k in missing] or [f"{where}: {error.message}"]
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return [f"{where}: expected {expected} but got {_json_type(error.instance)} {_short(error.instance)}"]
    return [f"{where}: {error.message}"]


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def errors_for(instance: Any, schema: dict) -> List[str]:
    """All problems with ``instance`` as ``$.path: message`` lines, in document order."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema, registry=_framework_registry())
    lines: List[str] = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path]):
        for line in _describe(error, schema, validator):
            if line not in lines:
                lines.append(line)
    return lines


def validate(instance: Any, schema: dict, file: str, what: str = "file") -> None:
    """Raise :class:`SchemaError` listing every problem as ``FILE::$.key: message``."""
    try:
        problems = errors_for(instance, schema)
    except RecursionError:
        problems = ["$: nested too deeply to validate"]
    if problems:
        lines = [f"{file}::{p}" for p in problems]
        head = lines[0] if len(lines) == 1 else f"{file}: {len(lines)} problems in {what}:\n  " + "\n  ".join(lines)
        raise SchemaError(head, errors=lines)
