"""The CPU fast paths: which expert implementation runs, and that every one computes the same thing.

``MoE.experts`` picks ``gather_mm`` (short float32 inputs, quantized experts), per-expert grouped
GEMMs (long inputs, half precision) and, when an optimised BLAS serves MLX, float32 GEMMs over
half-precision weights; ``runtime.linear.Linear`` does the same for dense projections. Each path
is compared with mlx-lm's ``SwitchGLU`` / ``nn.Linear`` on the same weights. Tests that need the
float32-compute branch force the BLAS check on (``linear.fast_sgemm``): the branch then runs for
real, only the speed it is chosen for is not measured here.
"""

import numpy as np
import pytest

import mlx.core as mx
import mlx.nn as nn

from mlx.utils import tree_flatten  # noqa: E402

from zoo_registry.runtime import linear  # noqa: E402
from zoo_registry.runtime.moe import GROUPED_MIN_ROWS_PER_EXPERT, MoE, expert_path, grouped_switch_glu, route  # noqa: E402

cpu_only = pytest.mark.skipif(mx.default_device() != mx.cpu, reason="the grouped paths are CPU-only")


@pytest.fixture(autouse=True)
def mlx_ops_only():
    """These are MLX's own paths; zoo's CPU kernels (tests/test_kernels.py) would serve the half/quantized cases."""
    from zoo_registry import kernels

    with kernels.disabled():
        yield


def randomize(module, std=0.1, seed=0):
    mx.random.seed(seed)
    module.load_weights([(k, mx.random.normal(v.shape) * std) for k, v in tree_flatten(module.parameters())])
    return module


@pytest.fixture
def fast_blas(monkeypatch):
    """Make the runtime believe an optimised BLAS serves MLX (the float32-compute branches run)."""
    monkeypatch.setattr(linear, "fast_sgemm", lambda: True)


def routed(m, T, seed=1, dtype=mx.float32):
    x = (mx.random.normal((1, T, m.gate.wg.weight.shape[1]), key=mx.random.key(seed)) * 0.5).astype(dtype)
    inds, weights = route(m.gate(x), m.top_k)
    return x, inds, weights


def diff(a, b):
    return float(mx.abs(a.astype(mx.float32) - b.astype(mx.float32)).max())


@cpu_only
def test_float32_paths_by_length():
    m = randomize(MoE(32, 24, 6, 2))
    _, short, _ = routed(m, 2)
    _, long, _ = routed(m, GROUPED_MIN_ROWS_PER_EXPERT * 6 // 2)  # top-2: twice as many pairs as tokens
    assert expert_path(m.switch_mlp, mx.zeros((1, 32)), short) == "gather"  # decode: no host sync
    assert expert_path(m.switch_mlp, mx.zeros((1, 32)), long) == "grouped"  # prefill: one GEMM per expert


@cpu_only
def test_grouped_float32_equals_gather_mm_including_unused_experts():
    m = randomize(MoE(32, 24, 8, 2))
    x, inds, _ = routed(m, 40)
    inds = mx.where(inds == 7, 6, inds)  # expert 7 gets no token
    np.testing.assert_allclose(np.array(grouped_switch_glu(m.switch_mlp, x, inds)), np.array(m.switch_mlp(x, inds)), atol=1e-5)


@cpu_only
def test_half_precision_paths(fast_blas):
    m = randomize(MoE(32, 24, 4, 2))
    m.set_dtype(mx.bfloat16)
    x, inds, _ = routed(m, 3, dtype=mx.bfloat16)
    assert expert_path(m.switch_mlp, x, inds) == "grouped-fp32"  # small experts: cast, then sgemm

@cpu_only
def test_half_precision_without_fast_blas_stays_native(monkeypatch):
    monkeypatch.setattr(linear, "fast_sgemm", lambda: False)
    m = randomize(MoE(32, 24, 4, 2))
    m.set_dtype(mx.bfloat16)
    x, inds, _ = routed(m, 3, dtype=mx.bfloat16)
    assert expert_path(m.switch_mlp, x, inds) == "grouped"  # reference BLAS: bf16 kernels are faster


@cpu_only
def test_grouped_fp32_compute_over_bf16_weights_matches_float32_gather():
    """Casting each used expert to float32 computes exactly what float32 weights of the same values give."""
    m = randomize(MoE(32, 24, 6, 3))
    m.set_dtype(mx.bfloat16)
    x, inds, _ = routed(m, 30, dtype=mx.bfloat16)
    got = grouped_switch_glu(m.switch_mlp, x, inds, mx.float32)
    assert got.dtype == mx.bfloat16
    m.set_dtype(mx.float32)  # the bf16 values, exactly representable in float32
    want = m.switch_mlp(x.astype(mx.float32), inds)  # mlx-lm's gather_mm
    assert diff(got, want) <= 2 ** -7 * max(1.0, float(mx.abs(want).max()))  # one bf16 rounding of the output


@cpu_only
@pytest.mark.parametrize("T", [1, 40], ids=["decode", "prefill"])
def test_bf16_moe_close_to_float32_with_fp32_compute(fast_blas, T):
    m = randomize(MoE(32, 24, 4, 2, shared_hidden_dims=16))
    x, _, _ = routed(m, T)
    ref = m(x)
    m.set_dtype(mx.bfloat16)
    out = m(x.astype(mx.bfloat16))
    assert out.dtype == mx.bfloat16 and diff(out, ref) <= 5e-2


@cpu_only
def test_quantized_experts_keep_gather_qmm(fast_blas):
    m = randomize(MoE(64, 64, 4, 2))
    m.set_dtype(mx.bfloat16)
    nn.quantize(m, group_size=32, bits=8, class_predicate=lambda path, mod: hasattr(mod, "to_quantized") and not path.endswith("wg"))
    x, inds, _ = routed(m, 40, dtype=mx.bfloat16)
    assert expert_path(m.switch_mlp, x, inds) == "gather"
    assert np.isfinite(np.array(m(x).astype(mx.float32))).all()


def test_linear_is_mlx_linear_with_the_same_parameters():
    ours, theirs = linear.Linear(16, 8, bias=True), nn.Linear(16, 8, bias=True)
    assert isinstance(ours, nn.Linear)
    assert [(k, v.shape) for k, v in tree_flatten(ours.parameters())] == [(k, v.shape) for k, v in tree_flatten(theirs.parameters())]
    seq = nn.Sequential(linear.Linear(64, 32))
    nn.quantize(seq, group_size=32, bits=8)
    assert isinstance(seq.layers[0], nn.QuantizedLinear)  # quantizes like nn.Linear


@cpu_only
@pytest.mark.parametrize("rows", [1, 12])
def test_linear_fp32_compute_matches_nn_linear(fast_blas, rows):
    ours = randomize(linear.Linear(64, 48, bias=True))
    theirs = nn.Linear(64, 48, bias=True)
    theirs.update(ours.parameters())
    x = mx.random.normal((2, rows, 64), key=mx.random.key(3))
    np.testing.assert_allclose(np.array(ours(x)), np.array(theirs(x)), atol=1e-5)  # float32: untouched path
    ours.set_dtype(mx.bfloat16)
    theirs.set_dtype(mx.bfloat16)
    xb = x.astype(mx.bfloat16)
    assert linear.fp32_compute(2 * rows, mx.bfloat16, ours.weight.size)
    got, want = ours(xb), theirs(xb)
    assert got.dtype == mx.bfloat16
    assert diff(got, want) <= 2 ** -6 * max(1.0, float(mx.abs(want.astype(mx.float32)).max()))
