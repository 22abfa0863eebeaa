"""Quantization stage: ``quantize=`` quantizes a loaded model (MLX-quantized checkpoints get their
quantized layers from :func:`..quantized_checkpoints.apply_checkpoint_quantization`).

Which modules stay in full precision comes from the architecture, never from names in the core:

- a module whose class (or instance) sets ``keep_float = True`` is never quantized, nor anything
  inside it (zoo's MoE :class:`~zoo_registry.runtime.moe.Router` does: a few KB per layer, and
  near-tie routing flips otherwise);
- a model's ``quant_predicate(path, module)`` (mlx-lm's convention) decides for the rest;
- mlx-lm's own model classes keep mlx-lm's router names (:data:`.builtin.MLX_LM_KEEP_FLOAT`).

Deprecated fallback, for plugins written before the model declared it: a model that declares
nothing (no ``keep_float`` module, no ``quant_predicate``) still gets mlx-lm's router names kept,
with a :class:`~zoo_registry.errors.ZooWarning` saying to declare ``keep_float``.
"""

from __future__ import annotations

import warnings
from typing import Iterable, Tuple

from ..errors import ConfigError, ZooWarning
from ..quantized_checkpoints import apply_checkpoint_quantization  # noqa: F401 - the MLX-quantized-checkpoint step, importable from here

QUANT_BITS = (2, 3, 4, 5, 6, 8)
GROUP_SIZES = (32, 64, 128)
KEEP_FLOAT = "keep_float"  # the attribute a module class sets to stay unquantized


def check_bits(quantize) -> None:
    """``quantize`` must be one of :data:`QUANT_BITS` (or ``None``)."""
    if quantize is not None and quantize not in QUANT_BITS:
        raise ConfigError(f"quantize={quantize!r}: expected one of {', '.join(map(str, QUANT_BITS))} bits")


def keep_float_paths(model) -> Tuple[str, ...]:
    """Paths of the modules of ``model`` that declare ``keep_float = True``."""
    return tuple(path for path, module in model.named_modules() if getattr(module, KEEP_FLOAT, False) is True)


def _inside(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root + ".") for root in roots)


def quantize_model(model, bits: int, group_size: int = 64) -> dict:
    """Affine-quantize every layer whose input size divides by ``group_size``, except the modules
    the architecture keeps in full precision (see the module docstring)."""
    import mlx.nn as nn

    from .builtin import MLX_LM_KEEP_FLOAT, builtin_keep_float

    if group_size not in GROUP_SIZES:
        raise ConfigError(f"group_size={group_size!r}: expected 32, 64 or 128")
    own = getattr(model, "quant_predicate", None)
    kept = keep_float_paths(model)
    suffixes = builtin_keep_float(model)
    legacy = not suffixes and not kept and own is None  # declares nothing: the deprecated name-based guess
    guessed = []

    def predicate(path, module):
        if not hasattr(module, "to_quantized") or _inside(path, kept) or (suffixes and path.endswith(suffixes)):
            return False
        if legacy and path.endswith(MLX_LM_KEEP_FLOAT):
            guessed.append(path)
            return False
        if module.weight.shape[-1] % group_size:
            return False
        return own(path, module) if own is not None else True

    nn.quantize(model, group_size=group_size, bits=bits, class_predicate=predicate)
    if guessed:
        name = f"{type(model).__module__}.{type(model).__name__}"
        warnings.warn(
            f"{name}: kept {guessed[0]!r}{f' and {len(guessed) - 1} more' if len(guessed) > 1 else ''} unquantized only because "
            "of its name, a guess that is deprecated; set `keep_float = True` on the router's class (or give the model a "
            "quant_predicate) to say so (docs/plugin-guide.md, 'Modules that stay in full precision')",
            ZooWarning, stacklevel=2,
        )
    return {"group_size": group_size, "bits": bits, "mode": "affine"}
