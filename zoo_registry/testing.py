"""pytest plugin for zoo plugin authors (entry point ``pytest11: zoo = zoo_registry.testing``).

What zoo's own tests use, for any plugin's tests:

- ``zoo_registry`` fixture: a fresh process-wide registry for one test. Installed plugins are
  discovered as usual; ``zoo_registry.register(module_or_object, name=...)`` adds a plugin by hand
  for this test only. The previous registry is restored afterwards, whatever the test did.
- ``zoo_empty_registry`` fixture: the same, without installed plugins (mlx-lm's built-ins only).
- :func:`tiny_checkpoint` (fixture ``zoo_tiny_checkpoint``): a real checkpoint folder
  (``config.json`` + ``model.safetensors``) for a config, with seeded random weights, in the
  model's own layout (``"mlx"``), in the original layout the architecture's rules export
  (``"hf"``: the inverse of the rules marked ``export: true``), or any layout a function makes.
- :func:`run_model_tests` (fixture ``zoo_model_tests``): the checks every architecture should
  pass, on a tiny config: output shape, float32 and bfloat16, prompt-cache steps equal the full
  forward pass, a batch of 2 equals its rows run alone, and the sanitize round trip (checkpoints
  written in each layout load back, through zoo's loader, to exactly the same parameters).

Importing this module imports neither MLX nor any plugin (pytest loads it in every session).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Union

import pytest

from .errors import PluginError, ZooError
from .registry import Registry, get_registry, reset_registry  # noqa: F401 - re-exported for tests

Layout = Union[str, Callable[[dict, dict], dict]]  # "mlx", "hf", or f(tensors, config) -> tensors


def _swap(registry: Registry):
    from . import registry as _registry_module

    previous = _registry_module._REGISTRY
    reset_registry(registry)
    return previous


@pytest.fixture
def zoo_registry():
    """A fresh registry with the installed plugins; register more with ``.register(obj, name)``."""
    registry = Registry.discover()
    previous = _swap(registry)
    try:
        yield registry
    finally:
        reset_registry(previous)


@pytest.fixture
def zoo_empty_registry():
    """A fresh registry with no plugins at all (mlx-lm's built-in architectures only)."""
    registry = Registry()
    previous = _swap(registry)
    try:
        yield registry
    finally:
        reset_registry(previous)


# -- tiny checkpoints -----------------------------------------------------------------------------


@dataclass
class TinyCheckpoint:
    """A checkpoint folder written by :func:`tiny_checkpoint`, and what went into it."""

    path: Path
    config: dict  # the config.json written (as given)
    normalised: dict  # what the architecture's normalize made of it
    weights: Dict[str, Any]  # the parameters in the model's own layout (evaluated mx.arrays)
    tensors: Dict[str, Any] = field(default_factory=dict)  # what model.safetensors holds (layout applied)


def random_model(config: dict, *, seed: int = 0, std: float = 0.1, registry: Optional[Registry] = None):
    """Build the model for ``config`` (validated and normalised through the registry) with seeded weights.

    Weights are ``N(0, std)``, plus 1 for norm weights (names containing ``norm``) so that every
    layer contributes. Returns ``(model, normalised config, architecture)``.
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_unflatten

    from .configs import validate_config
    from .loading.plugin import build_model

    arch, normalised = validate_config(dict(config), "config.json", registry)
    if arch.builtin:
        raise ValueError(f"model_type {config.get('model_type')!r} is served by mlx-lm, not by a plugin; these helpers test plugins")
    model = build_model(arch, normalised)  # a crash is a PluginError naming the plugin and model_type
    mx.random.seed(seed)
    weights = []
    for name, value in tree_flatten(model.parameters()):
        noise = mx.random.normal(value.shape) * std
        weights.append((name, ((1.0 if "norm" in name else 0.0) + noise).astype(value.dtype)))
    model.update(tree_unflatten(weights))
    mx.eval(model.parameters())
    model.eval()
    return model, normalised, arch


def to_layout(tensors: dict, config: dict, layout: Layout = "mlx", *, registry: Optional[Registry] = None) -> dict:
    """Model-layout ``tensors`` in ``layout``: ``"mlx"`` (as they are), ``"hf"`` (inverse of the
    architecture's ``export: true`` rules) or a function ``f(tensors, normalised config) -> tensors``."""
    from .configs import validate_config

    if registry is None:  # the public boundary: the process-wide registry by default (the rules need its ops)
        registry = get_registry()
    arch, normalised = validate_config(dict(config), "config.json", registry)
    tensors = dict(tensors)
    if callable(layout):
        return layout(tensors, normalised)
    if layout == "mlx":
        return tensors
    if layout == "hf":
        from .loading import rules_for
        from .sanitize import engine

        return engine.invert(rules_for(arch, registry), tensors, normalised, registry=registry).tensors
    raise ValueError(f"layout {layout!r}: expected 'mlx', 'hf' or a function f(tensors, config) -> tensors")


def tiny_checkpoint(folder, config: dict, layout: Layout = "mlx", *, seed: int = 0, std: float = 0.1,
                    registry: Optional[Registry] = None) -> TinyCheckpoint:
    """Write ``config.json`` + ``model.safetensors`` for ``config`` into ``folder`` (created)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    model, normalised, _ = random_model(config, seed=seed, std=std, registry=registry)
    weights = dict(tree_flatten(model.parameters()))
    tensors = to_layout(weights, config, layout, registry=registry)
    mx.eval(tensors)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    mx.save_safetensors(str(folder / "model.safetensors"), tensors, metadata={"format": "mlx"})
    return TinyCheckpoint(folder, dict(config), normalised, weights, tensors)


@pytest.fixture
def zoo_tiny_checkpoint(tmp_path):
    """:func:`tiny_checkpoint` with the folder optional: ``make(config, layout="mlx", *, name="ckpt", ...)``
    writes under this test's ``tmp_path / name``; ``make(folder, config, layout="mlx", ...)`` (the
    signature of :func:`tiny_checkpoint`) writes where you say. Returns a :class:`TinyCheckpoint`."""

    def make(*args, name: str = "ckpt", **kwargs) -> TinyCheckpoint:
        if args and isinstance(args[0], (str, os.PathLike)):
            return tiny_checkpoint(*args, **kwargs)
        if args and not isinstance(args[0], dict):
            raise TypeError(f"zoo_tiny_checkpoint: expected make(config, ...) or make(folder, config, ...), got a {type(args[0]).__name__} first")
        return tiny_checkpoint(tmp_path / name, *args, **kwargs)

    return make


# -- the model test runner ------------------------------------------------------------------------


def _max_diff(a, b) -> float:
    import mlx.core as mx

    if a.shape != b.shape:
        raise AssertionError(f"shapes differ: {a.shape} vs {b.shape}")
    return float(mx.abs(a.astype(mx.float32) - b.astype(mx.float32)).max())


def _check(ok: bool, message: str):
    if not ok:
        raise AssertionError(message)


def _config_label(config: dict, width: int = 240) -> str:
    text = json.dumps(config, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


@contextlib.contextmanager
def _step(check: str, config: dict, arch=None):
    """Run one check; a crash in the model's code (not a failed check, not a zoo error, which say
    what they are) becomes a :class:`PluginError` naming the check and the config, its cause chained."""
    try:
        yield
    except (AssertionError, ZooError):
        raise
    except Exception as e:  # noqa: BLE001 - the model under test may raise anything
        who = f"plugin {arch.provider!r}, model_type {arch.name!r}" if arch is not None else f"model_type {config.get('model_type')!r}"
        raise PluginError(
            f"run_model_tests: check {check!r} crashed ({who}) on config {_config_label(config)}: {type(e).__name__}: {e}",
            hint="the traceback of the cause above points into the model's code",
        ) from e


def run_model_tests(config: dict, tmp_path=None, *, layouts: Sequence[Layout] = ("mlx", "hf"), seed: int = 0,
                    length: int = 8, atol: float = 1e-4, registry: Optional[Registry] = None) -> Dict[str, Any]:
    """Run the standard checks on the plugin architecture serving ``config["model_type"]``.

    ``config`` is a (tiny) ``config.json`` dict. Checks, each raising ``AssertionError`` naming
    what failed and by how much:

    1. **shape**: ``model(ids[2, L])`` is ``[2, L, vocab_size]``;
    2. **dtypes**: in float32 and bfloat16 a prompt plus one cached step gives finite logits of that dtype;
    3. **cache**: a prompt, then one token at a time through ``make_prompt_cache``, equals the full
       forward pass (float32, max |Δ| ≤ ``atol``);
    4. **batch**: each row of a batch of 2 equals that row run alone (≤ ``atol``);
    5. **round trip** (needs ``tmp_path``): for each layout in ``layouts``, a checkpoint written in
       that layout and loaded by ``zoo_registry.load_model`` has exactly the original parameters
       (strict load: nothing missing or left over) and the same logits.

    Returns the measured figures (``{"cache_max_diff": ..., "batch_max_diff": ..., ...}``).
    """
    import mlx.core as mx
    import numpy as np
    from mlx.utils import tree_flatten
    from mlx_lm.models.cache import make_prompt_cache

    if registry is None:  # the public boundary: the process-wide registry by default
        registry = get_registry()
    model, normalised, arch = random_model(config, seed=seed, registry=registry)
    vocab = normalised["vocab_size"]
    ids = mx.array(np.random.default_rng(seed).integers(0, vocab, (2, length)))
    figures: Dict[str, Any] = {"architecture": arch.name, "provider": arch.provider}

    with _step("shape", config, arch):
        full = model(ids)
        mx.eval(full)
    _check(full.shape == (2, length, vocab), f"shape: logits are {full.shape}, expected {(2, length, vocab)}")
    figures["shape"] = tuple(full.shape)

    with _step("cache", config, arch):
        cache = make_prompt_cache(model)
        split = max(1, length // 2)
        steps = [model(ids[:, :split], cache=cache)]
        steps += [model(ids[:, t:t + 1], cache=cache) for t in range(split, length)]
        figures["cache_max_diff"] = d = _max_diff(mx.concatenate(steps, axis=1), full)
    _check(d <= atol, f"cache: prompt + cached steps differ from the full forward pass by {d:.3g} > {atol}")

    with _step("batch", config, arch):
        rows = [_max_diff(full[i:i + 1], model(ids[i:i + 1])) for i in range(2)]
    figures["batch_max_diff"] = d = max(rows)
    _check(d <= atol, f"batch: a batch of 2 differs from its rows run alone by {d:.3g} > {atol}")

    weights = dict(tree_flatten(model.parameters()))
    for dtype in (mx.float32, mx.bfloat16):
        name = str(dtype).rsplit(".", 1)[-1]
        with _step(name, config, arch):
            model.set_dtype(dtype)
            cache = make_prompt_cache(model)
            out = mx.concatenate([model(ids[:, :-1], cache=cache), model(ids[:, -1:], cache=cache)], axis=1)
            mx.eval(out)
        _check(out.dtype == dtype, f"{name}: logits are {out.dtype}")
        _check(bool(np.isfinite(np.array(out.astype(mx.float32))).all()), f"{name}: logits are not finite")
        figures[f"{name}_max_diff"] = _max_diff(out, full)
    model.set_dtype(mx.float32)
    model.load_weights(list(weights.items()))

    if tmp_path is not None:
        from .loading import load_model

        for i, layout in enumerate(layouts):
            label = layout if isinstance(layout, str) else getattr(layout, "__name__", f"layout{i}")
            folder = Path(tmp_path) / f"roundtrip-{i}-{label}"
            folder.mkdir(parents=True, exist_ok=True)
            with _step(f"round trip ({label})", config, arch):
                tensors = to_layout(weights, config, layout, registry=registry)
                mx.eval(tensors)
                (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
                mx.save_safetensors(str(folder / "model.safetensors"), tensors)
                loaded = load_model(folder, registry=registry)
            got = dict(tree_flatten(loaded.parameters()))
            _check(sorted(got) == sorted(weights), f"round trip ({label}): parameter names differ after loading")
            d = max(_max_diff(got[k], weights[k]) for k in weights)
            _check(d == 0.0, f"round trip ({label}): parameters differ after loading by {d:.3g}")
            with _step(f"round trip ({label})", config, arch):
                d = _max_diff(loaded(ids), full)
            _check(d <= atol, f"round trip ({label}): logits differ by {d:.3g}")
            figures[f"roundtrip_{label}"] = {"tensors": len(tensors), "names_only_in_file": sorted(set(tensors) - set(weights))}
    return figures


@pytest.fixture
def zoo_model_tests(tmp_path):
    """:func:`run_model_tests` with the round trip writing into this test's ``tmp_path``."""
    return functools.partial(run_model_tests, tmp_path=tmp_path)


__all__ = ["TinyCheckpoint", "random_model", "run_model_tests", "tiny_checkpoint", "to_layout"]
