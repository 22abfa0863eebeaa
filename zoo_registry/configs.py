"""Validate a model's ``config.json`` before any module is built.

1. Every number must be finite: ``NaN``/``Infinity`` (which Python's JSON reader and YAML's
   ``.nan``/``.inf`` accept) are refused wherever they appear.
2. ``model_type`` picks the architecture (a plugin's first, then mlx-lm's).
3. The architecture's JSON Schema checks structure: unknown keys, types, ranges, enums.
4. The architecture's ``normalize`` function checks what a schema cannot (heads divisible by KV
   heads, list lengths equal to the layer count, the parameter count, ...) and returns the config
   the model is built from (e.g. ``rope_parameters`` folded into ``rope_scaling``, ``head_dim`` resolved).

Every failure of the input is a :class:`ConfigError` whose message starts with ``FILE::$.key``.
A failure of the plugin itself (a schema file that is not a JSON Schema, a ``normalize`` that
crashes) is a :class:`PluginError` naming the plugin, so the user knows whom to tell.

The size limit (:func:`check_size`) is here so that every plugin refuses absurd configs the same
way, before anything is allocated: :data:`MAX_PARAMETERS` (``ZOO_MAX_PARAMETERS`` overrides it).
"""

from __future__ import annotations

import math
import os
from typing import Any, Optional, Tuple

from .errors import ConfigError, PluginError, SchemaError, ZooError
from .registry import Architecture, Registry, get_registry
from .resources import import_target
from .schema import load_schema, validate

# The largest open-weights models are about 0.4-0.7 T parameters (HunYuan-Large: 389 B); 10^12
# is out of reach of any machine zoo runs on, and a typo (an extra zero in hidden_size) is not.
MAX_PARAMETERS = 800_000_000_000


def max_parameters() -> int:
    """The parameter limit: ``ZOO_MAX_PARAMETERS`` if set (a positive integer), else :data:`MAX_PARAMETERS`."""
    raw = os.environ.get("ZOO_MAX_PARAMETERS", "").strip().replace("_", "")
    if not raw:
        return MAX_PARAMETERS
    try:
        value = int(float(raw)) if "e" in raw.lower() else int(raw)
    except ValueError:
        raise ConfigError(f"ZOO_MAX_PARAMETERS={raw!r}: expected a positive integer such as 1000000000000") from None
    if value < 1:
        raise ConfigError(f"ZOO_MAX_PARAMETERS={raw!r}: expected a positive integer")
    return value


def human_count(n: int) -> str:
    """``1234567890`` → ``'1.23 B'`` (K, M, B, T)."""
    for unit, scale in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


def check_size(parameters: int, where: str = "$", keys: str = "the layer sizes") -> None:
    """Refuse a config describing more than :func:`max_parameters` parameters (before allocating).

    ``where`` is the key path the message starts with; ``keys`` names what to check in the hint.
    """
    limit = max_parameters()
    if parameters > limit:
        raise ConfigError(
            f"{where}: this config describes a model of {parameters:,} parameters ({human_count(parameters)}); "
            f"zoo refuses more than {limit:,} ({human_count(limit)})",
            hint=f"check {keys} for a typo; set ZOO_MAX_PARAMETERS to raise the limit if the model is real",
        )


def _non_finite(value: Any, where: str = "$") -> Optional[Tuple[str, float]]:
    """The first NaN/inf number in a nested config, as ``(path, value)``."""
    if isinstance(value, float) and not math.isfinite(value):
        return where, value
    if isinstance(value, dict):
        for k, v in value.items():
            found = _non_finite(v, f"{where}.{k}")
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _non_finite(v, f"{where}[{i}]")
            if found:
                return found
    return None


def validate_config(config, file: str = "config.json", registry: Optional[Registry] = None) -> Tuple[Architecture, dict]:
    """Return ``(architecture, normalised config)`` or raise :class:`ConfigError`."""
    registry = registry or get_registry()
    if not isinstance(config, dict):
        raise ConfigError(f"{file}::$: a model config must be a JSON object, got {type(config).__name__}")
    try:
        bad = _non_finite(config)
    except RecursionError:
        raise ConfigError(f"{file}::$: the config is nested too deeply") from None
    if bad:
        raise ConfigError(f"{file}::{bad[0]}: {bad[1]!r} is not a finite number", hint="JSON has no NaN or Infinity; write a real number")
    model_type = config.get("model_type")
    if not isinstance(model_type, str):
        raise ConfigError(
            f"{file}::$.model_type: required key is missing" if model_type is None else f"{file}::$.model_type: expected string but got {model_type!r}",
            hint="a Hugging Face config.json names its architecture in model_type",
        )
    try:
        arch = registry.architecture(model_type)
    except KeyError as e:
        raise type(e)(f"{file}::$.model_type: {e}", hint=getattr(e, "hint", None)) from None
    if arch.config_schema:
        schema = _plugin_schema(arch)
        try:
            validate(config, schema, file, f"{arch.name} config")
        except ZooError:
            raise
        except RecursionError:
            raise ConfigError(f"{file}::$: the config is nested too deeply") from None
        except Exception as e:  # noqa: BLE001 - e.g. an unresolvable $ref: the schema's fault
            raise PluginError(
                f"plugin {arch.provider!r}: config_schema {arch.config_schema} of model_type {arch.name!r} failed while checking "
                f"{file}: {type(e).__name__}: {e}",
                hint=f"the plugin's schema is broken; report it to the plugin's authors (`zoo plugins` shows {arch.provider!r})",
            ) from e
    if arch.normalize:
        normalize = _plugin_target(arch, arch.normalize, "normalize")
        try:
            config = normalize(dict(config))
        except SchemaError:
            raise
        except ConfigError as e:
            msg = str(e)
            raise ConfigError(msg if msg.startswith(file) else f"{file}::{msg}", hint=e.hint) from None
        except ZooError:
            raise
        except Exception as e:  # noqa: BLE001 - a crash inside plugin code is the plugin's bug, not the user's
            raise PluginError(
                f"plugin {arch.provider!r}: normalize {arch.normalize} crashed on {file}: {type(e).__name__}: {e}",
                hint=f"this is a bug in the plugin {arch.provider!r}; report it with the config that triggers it",
            ) from e
        if not isinstance(config, dict):
            raise PluginError(
                f"plugin {arch.provider!r}: normalize {arch.normalize} returned {type(config).__name__} for {file}, not a config dict",
                hint=f"this is a bug in the plugin {arch.provider!r}",
            )
    return arch, config


def _plugin_schema(arch: Architecture) -> dict:
    """The architecture's schema; a broken schema file is reported as that plugin's error."""
    try:
        return load_schema(arch.config_schema)
    except PluginError as e:
        raise PluginError(
            f"plugin {arch.provider!r}: config_schema of model_type {arch.name!r}: {e}",
            hint=f"the plugin ships a broken schema; reinstall or upgrade it, or report it to its authors (`zoo plugins` shows {arch.provider!r})",
        ) from None


def _plugin_target(arch: Architecture, ref: str, what: str):
    try:
        target = import_target(ref)
    except PluginError as e:
        raise PluginError(f"plugin {arch.provider!r}: {what} of model_type {arch.name!r}: {e}", hint=e.hint) from None
    if not callable(target):
        raise PluginError(f"plugin {arch.provider!r}: {what} {ref} of model_type {arch.name!r} is a {type(target).__name__}, not a function")
    return target
