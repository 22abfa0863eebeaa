"""zoo's CPU operations for the rest of a decode step: RMSNorm, attention heads, attention, embedding rows.

MLX's CPU backend computes ``mx.fast.rms_norm``, ``mx.fast.rope`` and
``mx.fast.scaled_dot_product_attention`` as compositions of basic ops (~10, ~15 and ~15 graph nodes),
and ``nn.QuantizedEmbedding``'s lookup as ~55 (three gathers, shifts and masks). Every node costs one
CPU dispatch, 10-20 µs measured on the 2-core test machine, far more than a token's arithmetic in
them: before these ops a decode step of the A13B-shaped small model had ~1340 nodes. Each function
here is one node (a primitive of ``csrc/step.cpp``) on the CPU when the kernels serve the call, and
MLX's own op otherwise (another device, ``ZOO_KERNELS=off``, :func:`zoo_registry.kernels.disabled`,
an input they do not take). Results equal MLX's ops computed in float32, rounded once.
"""

from __future__ import annotations

from typing import Optional

import mlx.core as mx

from .. import kernels as _kernels  # the package: its _EXT is set when the extension loads
from . import FLOATS, QUANT_BITS, QUANT_GROUPS
from . import active as _active

# The attention kernel reads each key and value once per KV head in plain float32 loops: at one
# or a few query rows (decode) that beats MLX's composition, which dispatches ~15 ops; above this
# many (query row x key) pairs per head MLX's BLAS products win.
ATTENTION_MAX_PAIRS = 1 << 16


class _Disabled:
    """The context of :func:`disabled` (nestable)."""

    depth = 0

    def __enter__(self):
        _Disabled.depth += 1

    def __exit__(self, *exc):
        _Disabled.depth -= 1


def disabled() -> _Disabled:
    """MLX's own ops for these functions inside the block, the matmul kernels kept (benchmarks, tests)."""
    return _Disabled()


def serves(x: mx.array) -> bool:
    """True when the step kernels take ``x`` (a float array) on this device now."""
    return not _Disabled.depth and x.dtype in FLOATS and _active()


def rms_norm(x: mx.array, weight: Optional[mx.array], eps: float) -> mx.array:
    """``mx.fast.rms_norm(x, weight, eps)``, as one node on the CPU."""
    if serves(x) and x.ndim >= 1 and (weight is None or weight.dtype in FLOATS):
        return _kernels._EXT.rms_norm(x, weight, eps)
    return mx.fast.rms_norm(x, weight, eps)


def heads(x: mx.array, n_heads: int, rope=None, offset: int = 0, norm: bool = False,
          norm_weight: Optional[mx.array] = None, eps: float = 1e-5, norm_first: bool = False) -> mx.array:
    """A projection ``x [B, L, H * hd]`` as heads ``[B, H, L, hd]``: rotated by ``rope`` at ``offset``
    (``None``: not rotated) and RMS-normalised per head (``norm``, with ``norm_weight``), the norm
    after the rotation unless ``norm_first``. One node on the CPU for the rotary embeddings of
    :mod:`zoo_registry.runtime.rope` (``rope.kernel_args``) and integer offsets; MLX's ops otherwise."""
    B, L, _ = x.shape
    args = rope.kernel_args(L, offset) if rope is not None and hasattr(rope, "kernel_args") else None
    if serves(x) and isinstance(offset, int) and (rope is None or args is not None):
        dims, traditional, base, scale, freqs = args if args is not None else (0, False, None, 1.0, None)
        return _kernels._EXT.attention_heads(x, n_heads, dims, traditional, base, scale, offset, freqs, norm, norm_weight,
                                      eps, norm_first)
    y = x.reshape(B, L, n_heads, -1).transpose(0, 2, 1, 3)
    if norm and norm_first:
        y = mx.fast.rms_norm(y, norm_weight, eps)
    if rope is not None:
        y = rope(y, offset=offset)
    if norm and not norm_first:
        y = mx.fast.rms_norm(y, norm_weight, eps)
    return y


def attention_serves(queries: mx.array, keys, values, mask) -> bool:
    """True when :func:`attention` runs the kernel: plain (not quantized) K/V, no mask or a causal one."""
    if not (isinstance(keys, mx.array) and isinstance(values, mx.array) and serves(queries)):
        return False
    if keys.dtype not in FLOATS or values.dtype not in FLOATS or keys.shape[-1] != values.shape[-1]:
        return False
    L, S = queries.shape[2], keys.shape[2]
    if mask is None:
        pass
    elif isinstance(mask, str) and mask == "causal":
        if L > S:
            return False
    else:
        return False
    return L * S <= ATTENTION_MAX_PAIRS


def attention(queries: mx.array, keys: mx.array, values: mx.array, scale: float, mask=None) -> mx.array:
    """``softmax(scale * q k^T + mask) v`` for ``q [B, Hq, L, hd]``, ``k, v [B, Hkv, S, hd]``, returned as
    ``[B, L, Hq * hd]`` (check :func:`attention_serves` first; ``mask`` is ``None`` or ``"causal"``)."""
    return _kernels._EXT.attention(queries, keys, values, scale, mask == "causal")


def rows_serve(w: mx.array, scales: mx.array, biases: Optional[mx.array], group_size: int, bits: int,
               mode: str = "affine") -> bool:
    """True when :func:`quantized_rows` runs the kernel for this quantized table."""
    return (mode == "affine" and biases is not None and bits in QUANT_BITS and group_size in QUANT_GROUPS
            and scales.dtype in FLOATS and w.ndim == 2 and not _Disabled.depth and _active())


def quantized_rows(ids: mx.array, w: mx.array, scales: mx.array, biases: mx.array, group_size: int,
                   bits: int) -> mx.array:
    """``nn.QuantizedEmbedding``'s lookup (rows ``ids`` of ``w``, dequantized) as one node on the CPU
    (check :func:`rows_serve` first)."""
    return _kernels._EXT.quantized_rows(ids, w, scales, biases, group_size, bits)
