"""Validate a model's ``config.json`` before any module is built.

1. ``model_type`` picks the architecture (a plugin's first, then mlx-lm's).
2. The architecture's JSON Schema checks structure: unknown keys, types, ranges, enums.
3. The architecture's ``normalize`` function checks what a schema cannot (heads divisible by KV
   heads, list lengths equal to the layer count, ...) and returns the config the model is built
   from (e.g. ``rope_parameters`` folded into ``rope_scaling``, ``head_dim`` resolved).

Every failure is a :class:`ConfigError` whose message starts with ``FILE::$.key``.
"""

from __future__ import annotations

from typing import Optional, Tuple

from .errors import ConfigError, SchemaError
from .registry import Architecture, Registry, get_registry
from .resources import import_target
from .schema import load_schema, validate


def validate_config(config, file: str = "config.json", registry: Optional[Registry] = None) -> Tuple[Architecture, dict]:
    """Return ``(architecture, normalised config)`` or raise :class:`ConfigError`."""
    registry = registry or get_registry()
    if not isinstance(config, dict):
        raise ConfigError(f"{file}::$: a model config must be a JSON object, got {type(config).__name__}")
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
        validate(config, load_schema(arch.config_schema), file, f"{arch.name} config")
    if arch.normalize:
        try:
            config = import_target(arch.normalize)(dict(config))
        except SchemaError:
            raise
        except ConfigError as e:
            msg = str(e)
            raise ConfigError(msg if msg.startswith(file) else f"{file}::{msg}", hint=e.hint) from None
    return arch, config
