"""The float one-row (decode) products of zoo's CPU kernels (``dense_mm`` for float32 weights,
``half_mm`` for bfloat16/float16), against MLX.

The kernels read the rows of W as four streams (W split in four contiguous parts, one row of each
part at a time, the rows left over one by one), so the sizes here cover every split: fewer rows
than streams, a remainder of 1-3 rows, K below and not a multiple of the vector width, and with
two threads the chunks of rows that start inside W. Each output row must equal MLX's float32
``x @ W.T`` (W converted to float32) to float32 accumulation error and one output rounding, and be bit for bit the product of that row alone (where
a row sits in the split changes nothing in its arithmetic).
"""

import numpy as np
import pytest

import mlx.core as mx

from kernel_fixtures import each_isa, isas, require_kernels  # noqa: F401  (each_isa is a fixture)
from zoo_registry import kernels

require_kernels(kernels.available())
ext = kernels._EXT

ROUNDING = {mx.float32: 0.0, mx.bfloat16: 2.0**-8, mx.float16: 2.0**-11}  # half an ulp, relative
SHAPES = [(1, 16), (3, 7), (4, 1), (5, 77), (45, 512), (130, 513), (1103, 300)]  # (N, K); the last > 1 MB


@pytest.mark.parametrize("each_isa", isas(), indirect=True)
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("wdt", [mx.float32, mx.bfloat16, mx.float16])
@pytest.mark.parametrize("N,K", SHAPES)
def test_one_row_float_product(each_isa, n_threads, wdt, N, K):
    before = ext.threads()
    ext.set_threads(n_threads)
    try:
        check_one_row(wdt, N, K)
    finally:
        ext.set_threads(before)


def check_one_row(wdt, N, K):
    mx.random.seed(N * 1000 + K)
    w = mx.random.normal((N, K)).astype(wdt)
    x = mx.random.normal((1, K)).astype(wdt)
    product = ext.dense_mm if wdt == mx.float32 else ext.half_mm
    got = product(x, w, stream=mx.cpu)
    w32, x32 = w.astype(mx.float32), x.astype(mx.float32)
    ref = mx.matmul(x32, w32.T, stream=mx.cpu)
    assert got.shape == ref.shape == (1, N) and got.dtype == wdt
    g, r = np.array(got.astype(mx.float32)), np.array(ref)
    bound = np.abs(np.array(x32)) @ np.abs(np.array(w32)).T  # the size of the terms
    tol = 1e-5 * bound + ROUNDING[wdt] * np.abs(r) + 1e-6
    assert np.all(np.abs(g - r) <= tol), f"{wdt} N={N} K={K}: max {np.abs(g - r).max():.3g}"
    alone = np.concatenate([np.array(product(x, w[n:n + 1], stream=mx.cpu).astype(mx.float32)) for n in range(N)],
                           axis=1)
    assert np.array_equal(g, alone), f"{wdt} N={N} K={K}: a row's result depends on its place in the split"


@pytest.mark.parametrize("xdt", [mx.bfloat16, mx.float16])
def test_one_row_half_input_float32_weights(xdt):
    """Half-precision activations with float32 weights: converted to float32, one output rounding."""
    mx.random.seed(3)
    w = mx.random.normal((37, 129))
    x = mx.random.normal((1, 129)).astype(xdt)
    got = ext.dense_mm(x, w, stream=mx.cpu)
    ref = mx.matmul(x.astype(mx.float32), w.T, stream=mx.cpu)
    assert got.dtype == (x @ w.T).dtype == mx.float32
    bound = np.abs(np.array(x.astype(mx.float32))) @ np.abs(np.array(w)).T
    assert np.all(np.abs(np.array(got) - np.array(ref)) <= 1e-5 * bound + 1e-6)
