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
"""

from __future__ import annotations

from functools import lru_cache

import mlx.core as mx
import mlx.nn as nn

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


def matmul_t(x: mx.array, weight: mx.array) -> mx.array:
    """``x @ weight.T`` in ``x.dtype``, computed in float32 when :func:`fp32_compute` says so."""
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
