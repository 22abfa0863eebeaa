"""Half-precision matmuls on the CPU: when to run them in float32, and a ``Linear`` that does.

MLX's CPU backend sends float32 matmuls to BLAS (``cblas_sgemm``; an optimised one when
:mod:`.blas` put it in place) but multiplies bfloat16/float16 with its own generic kernels:
measured on a 2-core Zen 4 with BLIS, a 128×512 @ 512×1024 product takes 80 ms in bfloat16 and
7.7 ms when both operands are cast to float32 first, and a 1×512 @ 512×1024 product 0.54 ms vs
0.27 ms. Casting costs a pass over the weight, so it only pays when the product reuses it (several
rows) or the float32 copy stays in cache (a small matrix); a 1×512 @ 512×32000 LM-head product is
3× faster left in bfloat16. :func:`fp32_compute` encodes that rule; without an optimised BLAS
MLX's half-precision kernels beat the reference sgemm and nothing is cast.

The weights stay in their dtype (the memory a bfloat16 checkpoint saves is kept); only the
product is computed in float32 and cast back.

When zoo's CPU kernels are built (:mod:`zoo_registry.kernels`) they take over on the CPU: a
half-precision weight is read as it is stored, at memory speed for one row and by tiled GEMM for
many, and :class:`QuantizedLinear` / :class:`QuantizedEmbedding` (what ``nn.quantize`` makes of
zoo's :class:`Linear`, or what the loader swaps in for MLX's own classes) multiply MLX's affine
4/8-bit weights there too. On other devices, or without the extension, MLX's ops run.
"""

from __future__ import annotations

from functools import lru_cache

import mlx.core as mx
import mlx.nn as nn

from .. import kernels
from ..kernels import step

HALF = (mx.bfloat16, mx.float16)
UPCAST_MIN_ROWS = 8  # from this many input rows, a float32 GEMM beats the half-precision one
UPCAST_MAX_GEMV_ELEMENTS = 1 << 22  # below it, a cast-then-sgemv weight stays cache-resident


@lru_cache(maxsize=1)
def fast_sgemm() -> bool:
    """Whether MLX's float32 matmuls go to an optimised BLAS (see :mod:`.blas`), decided once."""
    from . import blas

    if blas.status().effective:
        return True
    provider = blas.global_provider()  # LD_PRELOAD, or loaded by hand before mlx.core
    return bool(provider) and "mlx_cpu.libs" not in provider


def fp32_compute(rows: int, dtype: mx.Dtype, elements: int) -> bool:
    """Whether ``rows`` input rows times a ``dtype`` weight of ``elements`` run faster in float32."""
    if dtype not in HALF or mx.default_device() != mx.cpu or not fast_sgemm():
        return False
    return rows >= UPCAST_MIN_ROWS or elements <= UPCAST_MAX_GEMV_ELEMENTS


F32_KERNEL_MAX_ROWS = 3  # float32 weights: zoo's matrix-vector kernel up to this many rows, BLAS above


def f32_kernel(x: mx.array, weight: mx.array) -> bool:
    """Whether zoo's kernel multiplies this float32 ``weight``: one-row (decode) products, where MLX's
    ``sgemm`` call with M=1 costs more than reading the weight (measured: 512x512 16 vs 18 µs with
    BLIS, 22 vs 600 µs with MLX's bundled reference BLAS), and every product without an optimised BLAS.
    Part of the decode-step kernels: off inside :func:`zoo_registry.kernels.step.disabled`."""
    if weight.dtype != mx.float32 or weight.ndim != 2 or not step.serves(x):
        return False
    return x.size // max(x.shape[-1], 1) <= F32_KERNEL_MAX_ROWS or not fast_sgemm()


def matmul_t(x: mx.array, weight: mx.array) -> mx.array:
    """``x @ weight.T`` in ``x.dtype``: zoo's kernels for a half-precision weight on the CPU (and a
    float32 one where :func:`f32_kernel` says so), else computed in float32 when :func:`fp32_compute`
    says so."""
    if weight.ndim == 2 and kernels.half_ok(x, weight):
        return kernels.half_matmul_t(x, weight)
    if f32_kernel(x, weight):
        return kernels._EXT.dense_mm(x, weight)
    if fp32_compute(x.size // x.shape[-1], weight.dtype, weight.size):
        return (x.astype(mx.float32) @ weight.astype(mx.float32).T).astype(x.dtype)
    return x @ weight.T


class Linear(nn.Linear):
    """``mlx.nn.Linear`` (same parameters, quantizes and shards the same) with :func:`matmul_t`."""

    def __call__(self, x: mx.array) -> mx.array:
        y = matmul_t(x, self["weight"])
        if "bias" in self:
            y = y + self["bias"].astype(y.dtype)
        return y

    def to_quantized(self, *args, **kwargs):
        """``nn.Linear.to_quantized``, returning zoo's :class:`QuantizedLinear` (same parameters)."""
        return as_kernel_layer(super().to_quantized(*args, **kwargs))


class QuantizedLinear(nn.QuantizedLinear):
    """``mlx.nn.QuantizedLinear`` whose product runs in zoo's CPU kernels when they serve it."""

    def __call__(self, x: mx.array) -> mx.array:
        y = kernels.quantized_matmul(x, self["weight"], self["scales"], self.get("biases"), self.group_size,
                                     self.bits, self.mode)
        if "bias" in self:
            y = y + self["bias"]
        return y


class QuantizedEmbedding(nn.QuantizedEmbedding):
    """``mlx.nn.QuantizedEmbedding`` whose lookup and ``as_linear`` (a tied LM head) run in zoo's CPU kernels."""

    def __call__(self, x: mx.array) -> mx.array:
        w, scales, biases = self["weight"], self["scales"], self.get("biases")
        if step.rows_serve(w, scales, biases, self.group_size, self.bits, self.mode):
            return step.quantized_rows(x, w, scales, biases, self.group_size, self.bits)
        return super().__call__(x)

    def as_linear(self, x: mx.array) -> mx.array:
        return kernels.quantized_matmul(x, self["weight"], self["scales"], self.get("biases"), self.group_size,
                                        self.bits, self.mode)


# A plain nn.Linear keeps its class (float layers of plugin models run MLX's matmul); zoo's own
# models build zoo's Linear, which sends half-precision weights to the kernels.
_KERNEL_CLASSES = {nn.QuantizedLinear: QuantizedLinear, nn.QuantizedEmbedding: QuantizedEmbedding}


def as_kernel_layer(module):
    """``module`` with its class swapped for zoo's subclass (same parameters) if it is exactly MLX's
    ``QuantizedLinear`` or ``QuantizedEmbedding``; anything else is returned as is."""
    cls = _KERNEL_CLASSES.get(type(module))
    if cls is not None:
        module.__class__ = cls
    return module
