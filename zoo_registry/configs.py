"""Validate a model's ``config.json`` before any module is built.

1. Every number must be finite: ``NaN``/``Infinity`` (which Python's JSON reader and YAML's
   ``.nan``/``.inf`` accept) are refused wherever they appear.
2. ``model_type`` picks the architecture (a plugin's first, then mlx-lm's).
3. The architecture's JSON Schema checks structure: unknown keys, types, ranges, enums. The keys
   every checkpoint may carry (``quantization``, ``torch_dtype``, ``architectures``, token ids, ...)
   belong to the framework (``schemas/checkpoint.schema.json``): a schema that extends it
   (``$ref`` + ``unevaluatedProperties: false``) declares only its own fields; for an older schema
   that does not, those keys it does not declare itself are checked against the framework's schema
   and hidden from it, so a plugin written before the base existed still loads ``zoo convert -q`` output.
4. The architecture's ``normalize`` function checks what a schema cannot (heads divisible by KV
   heads, list lengths equal to the layer count, the parameter count, ...) and returns the config
   the model is built from (e.g. ``rope_parameters`` folded into ``rope_scaling``, ``head_dim`` resolved).

Every failure of the input is a :class:`ConfigError` whose message starts with ``FILE::$.key``.
A failure of the plugin itself (a schema file that is not a JSON Schema, a ``normalize`` that
crashes) is a :class:`PluginError` naming the plugin, so the user knows whom to tell.

5. The parameter count is checked against :func:`max_parameters` (:func:`check_parameters`) for every
   plugin architecture: the plugin's own count if its ``normalize`` called :func:`check_size`,
   else zoo builds the model lazily (no weight is allocated) and sums its parameters' shapes.

The size limit (:func:`check_size`) is here so that every plugin refuses absurd configs the same
way, before anything is allocated: :data:`MAX_PARAMETERS` (``ZOO_MAX_PARAMETERS`` overrides it).
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, Optional, Tuple

from contextvars import ContextVar

from .errors import ConfigError, PluginError, SchemaError, ZooError
from .registry import Architecture, Registry, get_registry
from .resources import import_target
from .schema import checkpoint_schema, extends_checkpoint_schema, load_schema, validate

# The largest open-weights models are about 0.4-0.7 T parameters (HunYuan-Large: 389 B); 10^12
# is out of reach of any machine zoo runs on, and a typo (an extra zero in hidden_size) is not.
MAX_PARAMETERS = 800_000_000_000
_COUNTED: ContextVar[Optional[list]] = ContextVar("zoo_parameter_counts", default=None)  # check_size calls in normalize


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
    counted = _COUNTED.get()
    if counted is not None:
        counted.append(parameters)
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
    """Return ``(architecture, normalised config)`` or raise :class:`ConfigError`.

    ``registry``: the architectures to validate against (default: the process-wide registry; this
    public function is where that default is resolved, so zoo's own callers pass theirs)."""
    if registry is None:
        registry = get_registry()
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
            validate(*_for_schema(config, schema, file), file, f"{arch.name} config")
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
    counted: list = []
    token = _COUNTED.set(counted)
    try:
        config = _normalize(arch, config, file)
    finally:
        _COUNTED.reset(token)
    if not counted:
        check_parameters(arch, config, file)
    return arch, config


def _for_schema(config: dict, schema, file: str) -> Tuple[dict, Any]:
    """``(instance, schema)`` to validate. A schema extending the framework's base gets the config
    as it is; an older one gets it without the framework's keys it does not declare itself, which
    are checked here against the framework's schema instead."""
    if not isinstance(schema, dict) or extends_checkpoint_schema(schema):
        return config, schema
    base = checkpoint_schema()
    own = set(schema.get("properties") or {})
    patterns = list(schema.get("patternProperties") or {})
    owned = {k for k in base["properties"] if k in config and k not in own and not any(re.search(p, k) for p in patterns)}
    if not owned:
        return config, schema
    validate({k: config[k] for k in owned}, base, file, "config")
    return {k: v for k, v in config.items() if k not in owned}, schema


def _normalize(arch: Architecture, config: dict, file: str) -> dict:
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
    return config


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


# -- the parameter guard, for every plugin architecture ------------------------------------------


def parameter_count(arch: Architecture, config: dict) -> Optional[int]:
    """How many parameters the model built from the normalised ``config`` has, or ``None`` if zoo cannot tell.

    The architecture's own count if it registered one (an optional ``parameter_count``
    ``"module:attr"`` naming ``f(config) -> int``), else the sum of the shapes of the model built
    lazily from ``config``: MLX allocates nothing until the weights are evaluated, so this costs
    the construction of the modules only, whatever the sizes. A model that cannot be imported or
    built gives ``None``: the loader's build stage reports that plugin bug with its own message.
    """
    import math

    counter = getattr(arch, "parameter_count", None)
    if counter:
        count = _plugin_target(arch, counter, "parameter_count")(dict(config))
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise PluginError(f"plugin {arch.provider!r}: parameter_count {counter} of model_type {arch.name!r} returned {count!r}, not a count")
        return count
    from mlx.utils import tree_flatten

    try:
        model = import_target(arch.model)(dict(config))
        return sum(math.prod(v.shape) for _, v in tree_flatten(model.parameters()))
    except Exception:  # noqa: BLE001 - reported where the model is built for real, naming the plugin
        return None


def check_parameters(arch: Architecture, config: dict, file: str = "config.json") -> None:
    """Refuse a plugin architecture's config above :func:`max_parameters` (``zoo validate`` and every load).

    Called by :func:`validate_config` when the architecture's ``normalize`` did not already call
    :func:`check_size` with its own count. mlx-lm's built-in architectures are checked on the
    built model by the loader.
    """
    if arch.builtin or not arch.model:
        return
    count = parameter_count(arch, config)
    if count is None:
        return
    try:
        check_size(count, "$")
    except ConfigError as e:
        raise ConfigError(f"{file}::{e}", hint=e.hint) from None
