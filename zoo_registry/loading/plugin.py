"""A plugin architecture's model and weights: built from the normalised config, tensors sanitized.

:func:`build_model` calls the plugin's ``model`` target (a crash is the plugin's bug, reported as a
:class:`~zoo_registry.errors.PluginError` naming it); :func:`prepare_weights` applies the
architecture's sanitize rules (and the FP8/GPTQ conversion of :mod:`..quantized_checkpoints`) to
lazy arrays or, for :func:`~zoo_registry.loading.plan`, to header shapes, and compares them with the
model (:mod:`..sanitize.report`); :func:`load_plugin` puts the pieces together for a real load.
"""

from __future__ import annotations

import warnings
from typing import Optional

from .. import tied_head
from ..checkpoint import Checkpoint, check_index
from ..errors import ConfigError, PluginError, WeightsMismatchError, ZooError, ZooWarning
from ..registry import Architecture, Registry
from ..resources import import_target, resource_path
from .config import mx_dtype
from .quantize import apply_checkpoint_quantization


def rules_for(arch: Architecture, registry: Optional[Registry] = None):
    """The architecture's sanitize rules (an empty rule set if it declares none)."""
    from ..sanitize.rules import EMPTY, load_rules

    if not arch.rules:
        return EMPTY
    return load_rules(resource_path(arch.rules), registry)


def build_model(arch: Architecture, normalised: dict):
    """Build (without evaluating) the plugin model from its normalised config.

    The config was validated, so a crash here is the plugin's bug: it is reported as a
    :class:`PluginError` naming the plugin rather than as a traceback.
    """
    try:
        build = import_target(arch.model)
    except PluginError as e:
        raise PluginError(f"plugin {arch.provider!r}: model of model_type {arch.name!r}: {e}", hint=e.hint) from None
    try:
        model = build(dict(normalised))
    except ZooError:
        raise
    except MemoryError:
        raise ConfigError(f"model_type {arch.name!r}: not enough memory to build the model") from None
    except Exception as e:  # noqa: BLE001 - plugin code may raise anything
        raise PluginError(
            f"plugin {arch.provider!r}: building model_type {arch.name!r} ({arch.model}) crashed on a validated config: {type(e).__name__}: {e}",
            hint=f"this is a bug in the plugin {arch.provider!r}; report it with the config.json that triggers it",
        ) from e
    import mlx.nn as nn

    if not isinstance(model, nn.Module):
        raise PluginError(f"plugin {arch.provider!r}: {arch.model} returned {type(model).__name__}, not an mlx.nn.Module")
    return model


def prepare_weights(ckpt: Checkpoint, arch, config, normalised, model, *, xp_kind: str, registry=None, dtype=None):
    """Sanitize the checkpoint's tensors and make ``model`` quantized where they are.

    Returns ``(tensors, engine result, report)``. ``xp_kind`` is ``"mlx"`` (real lazy arrays) or
    ``"shapes"`` (headers only, for :func:`plan`). FP8 and GPTQ checkpoints
    (:mod:`.quantized_checkpoints`) are converted by the rules; ``dtype`` is what dequantized
    weights become (default: the checkpoint's ``torch_dtype``).
    """
    from mlx.utils import tree_flatten

    from .. import quantized_checkpoints as qc
    from ..sanitize import engine, report as report_mod
    from ..sanitize.tensors import SHAPES, describe, mlx_backend

    check_index(ckpt)
    tensors = ckpt.tensors() if xp_kind == "mlx" else dict(ckpt.specs())
    rules = rules_for(arch, registry)
    fmt = qc.read_quantization(ckpt.path, config)
    stats = qc.prepare(tensors, fmt, xp_kind) if fmt is not None else None
    rule_config = {**normalised, **fmt.rule_keys()} if fmt is not None else normalised
    result = engine.apply(rules, tensors, rule_config, xp=mlx_backend() if xp_kind == "mlx" else SHAPES, registry=registry)
    tensors = result.tensors
    q = config.get("quantization")
    if isinstance(q, dict):
        apply_checkpoint_quantization(model, q, tensors, config_file=str(ckpt.path / "config.json"))
    elif fmt is not None:
        qc.finish(model, tensors, result, fmt, stats, dtype=dtype, xp_kind=xp_kind)
    expected = {k: describe(v) for k, v in tree_flatten(model.parameters())}
    got = {k: describe(v) for k, v in tensors.items()}
    rep = report_mod.compare(
        expected, got, provenance=result.provenance, notes=[*normalised.get(tied_head.CONFIG_NOTES, ()), *result.notes], applied=result.applied,
        source=ckpt.path, architecture=arch.name,
    )
    rep.checkpoint_quantization = fmt  # the FP8/GPTQ format read (None for float and MLX checkpoints)
    rep.rules = rules  # the rule set applied (its plugin ops bound): `zoo convert --to hf` inverts it
    return tensors, result, rep


def load_plugin(ckpt: Checkpoint, arch, config, normalised, strict, dtype, registry):
    """Build a plugin's model, sanitize and check the weights (strict: refuse a mismatch), load them lazily."""
    path = ckpt.path
    tied_head.before_build(ckpt, config, normalised)  # a real lm_head is loaded, never dropped
    model = build_model(arch, normalised)
    tensors, _, report = prepare_weights(ckpt, arch, config, normalised, model, xp_kind="mlx", registry=registry, dtype=dtype)
    if not report.ok:
        tied_head.refuse_missing_head(report, config, normalised, path, strict)  # never left random
        if strict:
            raise WeightsMismatchError(
                report.message(), report=report,
                hint="pass strict=False (`--no-strict`) to load what fits, or check that config.json belongs to these weights",
            )
        warnings.warn(report.message(), ZooWarning, stacklevel=3)
    if dtype is not None:
        target = mx_dtype(dtype)
        from ..sanitize.tensors import is_floating

        tensors = {k: (v.astype(target) if is_floating(v.dtype) else v) for k, v in tensors.items()}
    items = [(k, tensors[k]) for k in report.loaded]
    tensors.clear()
    model.load_weights(items, strict=False)
    return model, report
