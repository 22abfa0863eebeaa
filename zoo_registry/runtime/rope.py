"""Rotary position embeddings (RoPE) on ``mx.fast.rope``, plus the variants MoE LLMs ship with.

All classes rotate the last axis of ``x`` shaped ``[B, n_heads, L, head_dim]`` in the NeoX /
``rotate_half`` layout (``traditional=False``: the first and second halves of ``head_dim`` form
the rotated pairs), starting at position ``offset`` (an int, or an ``mx.array`` of per-sequence
offsets as mlx-lm's batched caches pass).

- :class:`RoPE`: plain RoPE, ``inv_freq_i = base ** (-2i / d)``.
- :class:`NTKAlphaRoPE`: a fixed NTK-aware stretch of the base, ``base' = base * alpha ** (d / (d - 2))``,
  as used by HunYuan-Large (Sun et al., arXiv:2411.02265) to reach 256K context. Despite the
  "dynamic" label in the checkpoints' ``rope_scaling``, it does not depend on the sequence length.
- :class:`LinearRoPE`: positions divided by ``factor`` (position interpolation).
- :class:`DynamicNTKRoPE`: classic dynamic NTK: past ``max_position_embeddings`` the base grows
  with the current length, ``base * (factor * n / max_pos - (factor - 1)) ** (d / (d - 2))``.
- :class:`Llama3RoPE`: Llama 3.1's frequency-dependent stretch (``rope_type: llama3``): long
  wavelengths slowed by ``factor``, short ones kept, a smooth blend in between.

:func:`make_rope` picks one from a normalised ``rope_scaling`` mapping. Each class's ``kernel_args``
says how it calls ``mx.fast.rope``, so zoo's CPU kernels can rotate inside their fused attention-heads
op (:func:`zoo_registry.kernels.step.heads`); a plugin's own RoPE module without it keeps its call.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import mlx.core as mx
import mlx.nn as nn

from ..errors import ConfigError

Offset = Union[int, mx.array]
# What zoo's fused attention-heads kernel needs to rotate as ``mx.fast.rope`` does:
# (dims, traditional, base or None, scale, freqs or None).
KernelArgs = Tuple[int, bool, Optional[float], float, Optional[mx.array]]


def _inv_freq_powers(dims: int, base: float) -> mx.array:
    """``base ** (2i / dims)`` for ``i < dims / 2`` (the *periods* ``mx.fast.rope`` takes as ``freqs``)."""
    return mx.array(base, dtype=mx.float32) ** (mx.arange(0, dims, 2, dtype=mx.float32) / dims)


class RoPE(nn.Module):
    """Plain rotary embedding with base ``base`` (Su et al., RoFormer), NeoX layout by default."""

    def __init__(self, dims: int, base: float = 10000.0, traditional: bool = False, scale: float = 1.0):
        super().__init__()
        self.dims, self.base, self.traditional, self.scale = dims, float(base), traditional, float(scale)

    def extra_repr(self) -> str:
        return f"{self.dims}, base={self.base}, traditional={self.traditional}, scale={self.scale}"

    def __call__(self, x: mx.array, offset: Offset = 0) -> mx.array:
        return mx.fast.rope(x, self.dims, traditional=self.traditional, base=self.base, scale=self.scale, offset=offset)

    def kernel_args(self, length: int, offset: int) -> KernelArgs:
        """``(dims, traditional, base, scale, freqs)`` of the ``mx.fast.rope`` call, for zoo's fused kernel."""
        return self.dims, self.traditional, self.base, self.scale, None


class LinearRoPE(RoPE):
    """RoPE with positions divided by ``factor`` (``rope_scaling.type == "linear"``).

    Position interpolation squeezes a longer context into the trained range of angles.
    """

    def __init__(self, dims: int, base: float = 10000.0, factor: float = 1.0, traditional: bool = False):
        if factor <= 0:
            raise ConfigError(f"$.rope_scaling.factor: linear RoPE needs a factor > 0, got {factor!r}")
        super().__init__(dims, base, traditional, scale=1.0 / factor)
        self.factor = float(factor)


class NTKAlphaRoPE(nn.Module):
    """RoPE whose base is stretched once by ``alpha``: ``base' = base * alpha ** (d / (d - 2))``.

    This is HunYuan-Large's long-context RoPE (arXiv:2411.02265; also Hunyuan-A13B and the dense
    models, all with ``alpha = 1000``). Stretching the base lowers every rotation frequency, the
    lowest one by exactly ``alpha``, so positions far beyond the pre-training length still map to
    angles the model has seen. The frequencies are fixed at construction; the sequence length
    plays no part, so cached decode and full forward agree.

    With ``d = 128, base = 1e4, alpha = 1000``: ``base' = 11,158,839.9``.
    """

    def __init__(self, dims: int, base: float = 10000.0, alpha: float = 1.0, traditional: bool = False):
        super().__init__()
        if dims <= 2:
            raise ConfigError(f"$.head_dim: NTK-alpha RoPE needs head_dim > 2, got {dims}")
        if not alpha > 0:
            raise ConfigError(f"$.rope_scaling.alpha: NTK-alpha RoPE needs alpha > 0, got {alpha!r}")
        self.dims, self.traditional, self.alpha = dims, traditional, float(alpha)
        self.base = float(base) * float(alpha) ** (dims / (dims - 2))
        self._freqs = _inv_freq_powers(dims, self.base)  # [d/2] periods; underscore: not a parameter

    def extra_repr(self) -> str:
        return f"{self.dims}, alpha={self.alpha}, base'={self.base:.6g}"

    def __call__(self, x: mx.array, offset: Offset = 0) -> mx.array:
        return mx.fast.rope(x, self.dims, traditional=self.traditional, base=None, scale=1.0, offset=offset, freqs=self._freqs)

    def kernel_args(self, length: int, offset: int) -> KernelArgs:
        """``(dims, traditional, base, scale, freqs)`` of the ``mx.fast.rope`` call, for zoo's fused kernel."""
        return self.dims, self.traditional, None, 1.0, self._freqs


class DynamicNTKRoPE(nn.Module):
    """Dynamic NTK RoPE: plain RoPE up to ``max_position_embeddings``, then a base that grows.

    For a total length ``n = offset + L > max_position_embeddings`` the base becomes
    ``base * (factor * n / max_pos - (factor - 1)) ** (d / (d - 2))`` (the Hugging Face "dynamic"
    rule, read by HunYuan-Large's code when ``rope_scaling.alpha`` is absent or 0). As in Hugging
    Face, keys already in a cache keep the base they were rotated with, so past the trained length
    cached decode and a full forward pass differ slightly; within it they are identical.
    """

    def __init__(self, dims: int, base: float = 10000.0, factor: float = 1.0, max_position_embeddings: int = 2048, traditional: bool = False):
        super().__init__()
        if dims <= 2:
            raise ConfigError(f"$.head_dim: dynamic NTK RoPE needs head_dim > 2, got {dims}")
        self.dims, self.base, self.factor, self.traditional = dims, float(base), float(factor), traditional
        self.max_position_embeddings = int(max_position_embeddings)

    def extra_repr(self) -> str:
        return f"{self.dims}, base={self.base}, factor={self.factor}, max_position_embeddings={self.max_position_embeddings}"

    def base_for(self, length: int) -> float:
        """The base used when the sequence (cache plus new tokens) is ``length`` long."""
        n = max(int(length), self.max_position_embeddings)
        return self.base * ((self.factor * n / self.max_position_embeddings) - (self.factor - 1)) ** (self.dims / (self.dims - 2))

    def __call__(self, x: mx.array, offset: Offset = 0) -> mx.array:
        last = int(mx.max(offset).item()) if isinstance(offset, mx.array) else int(offset)
        base = self.base_for(x.shape[-2] + last)
        return mx.fast.rope(x, self.dims, traditional=self.traditional, base=base, scale=1.0, offset=offset)

    def kernel_args(self, length: int, offset: int) -> KernelArgs:
        """``(dims, traditional, base, scale, freqs)`` for ``length`` new positions at integer ``offset``."""
        return self.dims, self.traditional, self.base_for(length + offset), 1.0, None


class Llama3RoPE(nn.Module):
    """Llama 3.1's RoPE scaling (``rope_scaling.rope_type == "llama3"``), fixed at construction.

    Each rotation frequency is treated by its wavelength ``w = 2 pi * period`` against the
    original context ``n0 = original_max_position_embeddings``: wavelengths shorter than
    ``n0 / high_freq_factor`` are kept, longer than ``n0 / low_freq_factor`` are slowed by
    ``factor``, and in between the inverse frequency is the blend
    ``(1 - s) * f / factor + s * f`` with ``s = (n0 / w - low_freq_factor) / (high_freq_factor - low_freq_factor)``
    (continuous at both edges). Like :class:`NTKAlphaRoPE` it does not depend on the sequence
    length, so cached decode equals a full forward pass.
    """

    def __init__(self, dims: int, base: float = 10000.0, factor: float = 8.0, low_freq_factor: float = 1.0,
                 high_freq_factor: float = 4.0, original_max_position_embeddings: int = 8192, traditional: bool = False):
        super().__init__()
        if not factor > 0:
            raise ConfigError(f"$.rope_scaling.factor: llama3 RoPE needs a factor > 0, got {factor!r}")
        if not high_freq_factor > low_freq_factor > 0:
            raise ConfigError(
                f"$.rope_scaling: llama3 RoPE needs high_freq_factor > low_freq_factor > 0, got {high_freq_factor!r} and {low_freq_factor!r}"
            )
        self.dims, self.base, self.factor, self.traditional = dims, float(base), float(factor), traditional
        periods = _inv_freq_powers(dims, self.base)  # [d/2] = 1 / inv_freq
        wavelen = 2 * math.pi * periods
        n0 = float(original_max_position_embeddings)
        s = mx.clip((n0 / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor), 0.0, 1.0)
        # inverse frequency f -> (1 - s) f / factor + s f; as periods: p -> p / ((1 - s) / factor + s)
        self._freqs = periods / ((1 - s) / self.factor + s)

    def extra_repr(self) -> str:
        return f"{self.dims}, base={self.base}, factor={self.factor}"

    def __call__(self, x: mx.array, offset: Offset = 0) -> mx.array:
        return mx.fast.rope(x, self.dims, traditional=self.traditional, base=None, scale=1.0, offset=offset, freqs=self._freqs)

    def kernel_args(self, length: int, offset: int) -> KernelArgs:
        """``(dims, traditional, base, scale, freqs)`` of the ``mx.fast.rope`` call, for zoo's fused kernel."""
        return self.dims, self.traditional, None, 1.0, self._freqs


ROPE_TYPES = ("default", "linear", "dynamic", "ntk_alpha", "llama3")


def make_rope(dims: int, base: float, scaling: Optional[dict] = None, max_position_embeddings: Optional[int] = None, traditional: bool = False) -> nn.Module:
    """Build the RoPE a (normalised) ``rope_scaling`` mapping asks for.

    ``scaling`` is ``None`` (plain RoPE) or a mapping with ``type`` (or ``rope_type``) and, by type:
    ``linear`` → ``factor``; ``dynamic`` with ``alpha`` > 0 → :class:`NTKAlphaRoPE` (HunYuan's
    reading of the label); ``dynamic`` without ``alpha`` (absent, null or 0) → :class:`DynamicNTKRoPE`
    with ``factor`` and ``max_position_embeddings``; ``ntk_alpha`` (transformers' in-memory name)
    → :class:`NTKAlphaRoPE`; ``llama3`` → :class:`Llama3RoPE` with ``factor``, ``low_freq_factor``,
    ``high_freq_factor`` and ``original_max_position_embeddings``. Anything else raises
    :class:`ConfigError` naming the type.
    """
    if not scaling:
        return RoPE(dims, base, traditional)
    rope_type = scaling.get("type") or scaling.get("rope_type") or "default"
    alpha = scaling.get("alpha")
    if rope_type == "default":
        return RoPE(dims, base, traditional)
    if rope_type == "linear":
        return LinearRoPE(dims, base, scaling.get("factor", 1.0), traditional)
    if rope_type == "ntk_alpha" or (rope_type == "dynamic" and alpha):
        return NTKAlphaRoPE(dims, base, alpha if alpha is not None else 1.0, traditional)
    if rope_type == "llama3":
        keys = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
        return Llama3RoPE(dims, base, traditional=traditional, **{k: scaling[k] for k in keys if k in scaling})
    if rope_type == "dynamic":
        if max_position_embeddings is None:
            raise ConfigError("$.max_position_embeddings: dynamic NTK RoPE without alpha needs max_position_embeddings")
        return DynamicNTKRoPE(dims, base, scaling.get("factor", 1.0), max_position_embeddings, traditional)
    raise ConfigError(
        f"$.rope_scaling.type: unsupported RoPE type {rope_type!r}; supported: {', '.join(ROPE_TYPES)}",
        hint="HunYuan checkpoints use type 'dynamic' with an alpha (NTK-alpha RoPE)",
    )
