"""zoo: a plugin-based model zoo for MLX.

Public API (everything else is internal)::

    from zoo_registry import load, load_model
    model, tokenizer = load("hunyuan-tiny")

Plugins implement the hooks in :mod:`zoo_registry.hookspecs` with :data:`hookimpl`.
Importing this package does not import MLX; ``load``/``load_model`` do.
"""

from .errors import (
    CheckpointError,
    ConfigError,
    DuplicateNameError,
    PluginError,
    SchemaError,
    UnknownNameError,
    UnsafeInputError,
    WeightsMismatchError,
    ZooError,
)
from .hookspecs import hookimpl
from ._version import __version__
from .registry import get_registry


def get_component(name: str):
    """Import and return the runtime component a plugin registered as ``name``."""
    return get_registry().component(name).load()


def load(path_or_name, **kwargs):
    """Load ``(model, tokenizer)`` from a card name, a folder or a Hugging Face repo id.

    Mirrors ``mlx_lm.load``; see :func:`zoo_registry.loading.load` for the keyword arguments.
    """
    from .loading import load as _load

    return _load(path_or_name, **kwargs)


def load_model(path_or_name, **kwargs):
    """Load only the model (an ``mlx.nn.Module`` following mlx-lm's model protocol)."""
    from .loading import load_model as _load_model

    return _load_model(path_or_name, **kwargs)


def plan(path_or_name, **kwargs):
    """What loading would do (architecture, rules, report) from safetensors headers only."""
    from .loading import plan as _plan

    return _plan(path_or_name, **kwargs)


__all__ = [
    "CheckpointError",
    "ConfigError",
    "DuplicateNameError",
    "PluginError",
    "SchemaError",
    "UnknownNameError",
    "UnsafeInputError",
    "WeightsMismatchError",
    "ZooError",
    "get_component",
    "get_registry",
    "hookimpl",
    "load",
    "load_model",
    "plan",
]
