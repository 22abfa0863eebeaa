"""Stage 2, config checks: ``config.json`` read, remote code refused, overrides merged, validated.

``model_file`` and an ``auto_map`` that no plugin makes unnecessary are refused (zoo never runs
Python shipped with a checkpoint); a card's and the caller's ``config_overrides`` are merged over
the file; :func:`..configs.validate_config` picks the architecture and normalises. The caller's
load options that depend on no checkpoint (``dtype``) are checked here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

from ..errors import CheckpointError, CheckpointNotFoundError, ConfigError, UnsafeInputError
from ..files import describe_missing, read_json
from ..registry import Registry
from .resolve import resolve_source


def read_config(folder: Path) -> Tuple[dict, str]:
    """``(config.json as a dict, its path)``; a missing or non-object file is an error naming it."""
    file = folder / "config.json"
    if not file.is_file():
        problem = describe_missing(file, "config.json")
        cls = CheckpointNotFoundError if problem.endswith("not found") else CheckpointError
        raise cls(problem, hint="a checkpoint folder needs the model's config.json")
    config = read_json(file, "config")
    if not isinstance(config, dict):
        raise ConfigError(f"{file}::$: a model config must be a JSON object, got {type(config).__name__}")
    return config, str(file)


def refuse_remote_code(config: dict, file: str, registry: Registry) -> None:
    """zoo never runs Python shipped with a checkpoint."""
    if "model_file" in config:
        raise UnsafeInputError(
            f"{file}::$.model_file: the config asks to import {config['model_file']!r} from the checkpoint; zoo never runs code shipped with weights",
            hint="install a zoo plugin that serves this model_type instead",
        )
    if "auto_map" in config:
        model_type = config.get("model_type")
        try:
            registry.architecture(model_type) if isinstance(model_type, str) else None
        except KeyError:
            raise UnsafeInputError(
                f"{file}::$.auto_map: model_type {model_type!r} is served by no installed plugin, and its auto_map points to the "
                "checkpoint's own Python code, which zoo never runs",
                hint="install a zoo plugin serving this model_type (`zoo list` shows what is installed)",
            ) from None


def _card_overrides(card) -> dict:
    if card is None:
        return {}
    value = card.data.get("config_overrides") or {}
    return dict(value) if isinstance(value, dict) else {}


def _card_quantization(card) -> Optional[dict]:
    if card is None:
        return None
    q = card.data.get("quantization")
    return dict(q) if isinstance(q, dict) else None


def prepare(source, config_overrides, registry: Registry, allow_pickle_weights: Optional[bool] = None):
    """Stages 1-2: resolve ``source``, read and check its config, merge overrides, validate.

    ``registry`` is the caller's (the public functions resolve the process-wide one at their boundary).
    Returns ``(registry, resolved, config, overrides, architecture, normalised config)``.
    """
    resolved = resolve_source(source, registry, allow_pickle_weights=allow_pickle_weights)
    raw, file = read_config(resolved.path)
    refuse_remote_code(raw, file, registry)
    overrides = {**_card_overrides(resolved.card), **(config_overrides or {})}
    config = {**raw, **overrides}
    from ..configs import validate_config

    arch, normalised = validate_config(config, file, registry)
    return registry, resolved, config, overrides, arch, normalised


def mx_dtype(dtype):
    """``"bfloat16"``, ``"float16"``, ``"float32"`` (or an MLX dtype) → the MLX dtype; anything else is a :class:`ConfigError`."""
    import mlx.core as mx

    name = str(dtype).rsplit(".", 1)[-1]
    if name not in ("float16", "bfloat16", "float32"):
        raise ConfigError(f"dtype={dtype!r}: expected float16, bfloat16 or float32")
    return getattr(mx, name)
