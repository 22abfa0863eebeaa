"""pytest plugin for zoo plugin authors (entry point ``pytest11: zoo = zoo_registry.testing``).

Fixtures:

- ``zoo_registry``: a fresh process-wide registry for one test. Installed plugins are discovered
  as usual; ``zoo_registry.register(module_or_object, name=...)`` adds a plugin by hand for this
  test only. The previous registry is restored afterwards, whatever the test did.
- ``zoo_empty_registry``: the same, without discovering installed plugins (mlx-lm's built-ins only).
"""

from __future__ import annotations

import pytest

from .registry import Registry, get_registry, reset_registry  # noqa: F401 - re-exported for tests


def _swap(registry: Registry):
    from . import registry as _registry_module

    previous = _registry_module._REGISTRY
    reset_registry(registry)
    return previous


@pytest.fixture
def zoo_registry():
    """A fresh registry with the installed plugins; register more with ``.register(obj, name)``."""
    previous = _swap(Registry.discover())
    try:
        yield get_registry()
    finally:
        reset_registry(previous)


@pytest.fixture
def zoo_empty_registry():
    """A fresh registry with no plugins at all (mlx-lm's built-in architectures only)."""
    previous = _swap(Registry())
    try:
        yield get_registry()
    finally:
        reset_registry(previous)
