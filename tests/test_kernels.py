"""zoo's CPU kernels (csrc/, zoo_registry.kernels) against MLX's own ops.

Every product is compared with MLX computing the same thing: the reference is MLX's op on float32
inputs (its float32 CPU kernels accumulate in float32), cast to the output dtype, so the kernels
must agree to float32 accumulation error plus one rounding of the output. Each instruction set
this CPU runs (AVX-512 with BF16 / AVX-512 / AVX2 / NEON / the portable code) and 1 and 2 threads are checked.
"""

import os
from pathlib import Path

import numpy as np
import pytest

import mlx.core as mx
import mlx.nn as nn

from zoo_registry import kernels  # noqa: E402

if not kernels.available():
    if os.environ.get("CI"):
        pytest.fail(f"zoo's CPU kernels must be built in CI: {kernels.status().reason}", pytrace=False)
    pytest.skip(f"zoo's CPU kernels are not built: {kernels.status().reason}", allow_module_level=True)

from kernel_fixtures import isas  # noqa: E402

ext = kernels._EXT
# the best instruction set of this CPU and every lower one (x86-64: avx512bf16 > avx512 > avx2 > generic)
ISAS = isas()
ROUNDING = {mx.float32: 0.0, mx.bfloat16: 2.0**-8, mx.float16: 2.0**-11}  # half an ulp, relative


@pytest.fixture(params=ISAS)
def isa(request):
    before = ext.isa()
    ext.set_isa(request.param)
    yield request.param
    ext.set_isa(before)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    before = ext.threads()
    ext.set_threads(request.param)
    yield request.param
    ext.set_threads(before)


def check(got, ref, bound, what):
    """``got`` (kernel) equals ``ref`` (MLX, float32) up to float32 accumulation and output rounding.

    ``bound`` is ``|x| @ |W|.T``: the size of the terms, which scales the accumulation error.
    """
    assert got.shape == ref.shape, what
    g, r, b = (np.array(a.astype(mx.float32)) for a in (got, ref, bound))
    tol = 1e-5 * b + ROUNDING[got.dtype] * np.abs(r) + 1e-6
    bad = np.abs(g - r) > tol
    assert not bad.any(), f"{what}: {bad.sum()} of {bad.size} differ, max {np.abs(g - r).max():.3g}"


def quantized(N, K, gs, bits, sdt, seed, E=None):
    mx.random.seed(seed)
    w = mx.random.normal((N, K) if E is None else (E, N, K)) * 0.05
    wq, s, b = mx.quantize(w.astype(sdt), group_size=gs, bits=bits)
    deq = mx.dequantize(wq, s.astype(mx.float32), b.astype(mx.float32), group_size=gs, bits=bits)
    return wq, s, b, deq


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("gs", [32, 64, 128])
@pytest.mark.parametrize("dtype", [mx.float32, mx.bfloat16, mx.float16])
def test_qmm_matches_mlx(isa, threads, bits, gs, dtype):
    for N, K, lead in [(1, gs, (1,)), (77, 3 * gs, (1,)), (130, 2 * gs, (5,)), (33, gs, (2, 9)), (260, 4 * gs, (1, 1))]:
        wq, s, b, deq = quantized(N, K, gs, bits, dtype, seed=N + K)
        x = mx.random.normal((*lead, K)).astype(dtype)
        got = kernels.quantized_matmul(x, wq, s, b, gs, bits)
        xf = x.astype(mx.float32)
        ref = mx.quantized_matmul(xf, wq, s.astype(mx.float32), b.astype(mx.float32), transpose=True,
                                  group_size=gs, bits=bits)
        assert got.dtype == dtype
        check(got, ref, mx.abs(xf) @ mx.abs(deq).T, f"q{bits} g{gs} {dtype} N={N} K={K} x{lead}")


@pytest.mark.parametrize("gs", [32, 64, 128])
def test_q4_one_weight_rows_are_exact(isa, gs):
    """A row with a single nonzero weight (q = 1, bias 0) gives fl(scale * x[j]): bit for bit MLX's
    result. Every bit of the float32 activation must reach the product: the AVX512_BF16 kernel
    splits x into three bfloat16 parts for that (two would leave a 2^-17 relative error, which the
    accumulation-bound tolerance of the other tests would not see)."""
    N, K = 80, 256
    mx.random.seed(gs)
    cols = np.arange(N) * 37 % K  # the nonzero weight of row n, every position class over the rows
    q = np.zeros((N, K), dtype=np.uint32)
    q[np.arange(N), cols] = 1
    wq = mx.array((q.reshape(N, K // 8, 8) << (4 * np.arange(8, dtype=np.uint32))).sum(-1).astype(np.uint32))
    s = mx.random.uniform(0.5, 2.0, (N, K // gs))
    b = mx.zeros((N, K // gs))
    x = mx.random.normal((1, K)) * mx.exp(mx.random.normal((1, K)) * 4)  # magnitudes over ~e^±12
    got = np.array(kernels.quantized_matmul(x, wq, s, b, gs, 4))
    ref = np.array(mx.quantized_matmul(x, wq, s, b, transpose=True, group_size=gs, bits=4))
    direct = np.array(x)[0, cols] * np.array(s)[np.arange(N), cols // gs]  # float32 products
    assert np.array_equal(ref[0], direct)  # the construction is what it claims
    assert np.array_equal(got, ref), f"{isa} g{gs}: {np.sum(got != ref)} of {N} differ"


def test_qmm_float32_activations_half_scales():
    """A bfloat16 model run with float32 activations: MLX promotes the output to float32."""
    wq, s, b, deq = quantized(40, 128, 64, 4, mx.bfloat16, seed=1)
    x = mx.random.normal((3, 128))
    got = kernels.quantized_matmul(x, wq, s, b, 64, 4)
    ref = mx.quantized_matmul(x, wq, s.astype(mx.float32), b.astype(mx.float32), group_size=64, bits=4)
    assert got.dtype == mx.float32
    check(got, ref, mx.abs(x) @ mx.abs(deq).T, "f32 x, bf16 scales")


def test_strided_and_broadcast_inputs():
    """A transposed (non-contiguous) x is read through its strides, as MLX's op reads it."""
    wq, s, b, deq = quantized(50, 64, 64, 8, mx.float32, seed=2)
    base = mx.random.normal((64, 6))
    x = base.T  # [6, 64], column-major view
    got = kernels.quantized_matmul(x, wq, s, b, 64, 8)
    check(got, mx.quantized_matmul(x, wq, s, b, group_size=64, bits=8), mx.abs(x) @ mx.abs(deq).T, "strided x")


@pytest.mark.parametrize("wdt", [mx.bfloat16, mx.float16])
@pytest.mark.parametrize("xdt", [mx.float32, mx.bfloat16, mx.float16])
def test_half_matmul_matches_mlx(isa, threads, wdt, xdt):
    for N, K, lead in [(1, 7, (1,)), (65, 37, (1,)), (300, 257, (1,)), (31, 100, (7,)), (129, 64, (2, 5))]:
        mx.random.seed(N * K)
        w = (mx.random.normal((N, K)) * 0.1).astype(wdt)
        x = mx.random.normal((*lead, K)).astype(xdt)
        got = kernels.half_matmul_t(x, w)
        out = (mx.zeros((1,), dtype=xdt) + mx.zeros((1,), dtype=wdt)).dtype  # MLX promotion
        ref = (x.astype(mx.float32) @ w.astype(mx.float32).T)
        assert got.dtype == out
        check(got, ref, mx.abs(x.astype(mx.float32)) @ mx.abs(w.astype(mx.float32)).T, f"{wdt} x {xdt} N={N} K={K}")


def test_half_special_values():
    """Infinities, NaN and float16 subnormals convert exactly (the portable fp16 path does it in integers)."""
    w = mx.array([[1.0, -2.0, 6e-8, 65504.0], [float("inf"), 0.0, 0.0, 0.0], [float("nan"), 1.0, 0.0, 0.0]]).astype(mx.float16)
    x = mx.array([[1.0, 1.0, 1.0, 1.0]])
    for name in ISAS:
        ext.set_isa(name)
        got = np.array(kernels.half_matmul_t(x, w))
        ext.set_isa(kernels.status().isa)
        ref = np.array(x @ w.astype(mx.float32).T)
        assert np.isinf(got[0, 1]) and np.isnan(got[0, 2]), name
        assert got[0, 0] == pytest.approx(ref[0, 0], rel=1e-6), name


def expert_batch(T, k, E):
    """Indices [T, k] where expert 0 gets no token, expert 1 exactly one, expert 2 every token."""
    rng = np.random.default_rng(T * 31 + k)
    idx = np.zeros((T, k), dtype=np.uint32)
    for t in range(T):
        others = rng.choice(np.arange(3, E), size=k - 1, replace=False) if k > 1 else []
        idx[t] = [2, *others]
    if k > 1:
        idx[0, 1] = 1
    return mx.array(idx)


@pytest.mark.parametrize("bits,gs", [(4, 32), (4, 64), (8, 64), (8, 128), (4, 128)])
@pytest.mark.parametrize("dtype", [mx.float32, mx.bfloat16])
def test_gather_qmm_matches_mlx(isa, threads, bits, gs, dtype):
    E, N, K = 7, 45, 2 * gs
    wq, s, b, deq = quantized(N, K, gs, bits, dtype, seed=bits + gs, E=E)
    sf, bf = s.astype(mx.float32), b.astype(mx.float32)
    for T, k in [(1, 3), (9, 3), (12, 2)]:
        idx = expert_batch(T, k, E)
        x = mx.random.normal((T, 1, 1, K)).astype(dtype)  # SwitchGLU's unsorted form
        xs = x.reshape(T, 1, K)[mx.arange(T * k) // k]  # and its sorted form, [T*k, 1, K]
        flat = idx.reshape(-1)
        for xin, ind in [(x, idx), (xs, flat)]:
            got = kernels.gather_qmm(xin, wq, s, b, ind, gs, bits)
            xf = xin.astype(mx.float32)
            ref = mx.gather_qmm(xf, wq, sf, bf, rhs_indices=ind, transpose=True, group_size=gs, bits=bits)
            bound = mx.gather_mm(mx.abs(xf), mx.abs(deq).swapaxes(-1, -2), rhs_indices=ind)
            assert got.dtype == dtype
            check(got, ref, bound, f"gather q{bits} g{gs} {dtype} T={T} k={k} x{tuple(xin.shape)}")
    # several rows per batch entry (M > 1), through the tiled path
    x = mx.random.normal((4, 6, K)).astype(dtype)
    ind = mx.array([2, 2, 5, 0], dtype=mx.uint32)
    got = kernels.gather_qmm(x, wq, s, b, ind, gs, bits)
    xf = x.astype(mx.float32)
    ref = mx.gather_qmm(xf, wq, sf, bf, rhs_indices=ind, transpose=True, group_size=gs, bits=bits)
    check(got, ref, mx.gather_mm(mx.abs(xf), mx.abs(deq).swapaxes(-1, -2), rhs_indices=ind), "gather M=6")


@pytest.mark.parametrize("wdt", [mx.bfloat16, mx.float16])
def test_gather_half_matches_mlx(isa, wdt):
    E, N, K, T, k = 6, 33, 72, 10, 3
    mx.random.seed(3)
    w = (mx.random.normal((E, N, K)) * 0.1).astype(wdt)
    idx = expert_batch(T, k, E)
    x = mx.random.normal((T, 1, 1, K)).astype(wdt)
    got = kernels.gather_half_mm(x, w, idx)
    wf, xf = w.astype(mx.float32), x.astype(mx.float32)
    ref = mx.gather_mm(xf, wf.swapaxes(-1, -2), rhs_indices=idx)
    check(got, ref, mx.gather_mm(mx.abs(xf), mx.abs(wf).swapaxes(-1, -2), rhs_indices=idx), f"gather {wdt}")


def test_layers_use_kernels_and_match(threads):
    """zoo's QuantizedLinear / QuantizedEmbedding / MoE experts give MLX's results with and without kernels."""
    from zoo_registry.runtime.linear import Linear
    from zoo_registry.runtime.moe import MoE, expert_path

    mx.random.seed(0)
    lin = Linear(96, 50)
    q = lin.to_quantized(group_size=32, bits=4)
    assert type(q).__name__ == "QuantizedLinear" and type(q).__module__.startswith("zoo_registry")
    moe = MoE(64, 32, num_experts=6, top_k=2, shared_hidden_dims=32)
    nn.quantize(moe, group_size=32, bits=8, class_predicate=lambda p, m: hasattr(m, "to_quantized") and not p.endswith("wg"))
    x96, x64 = mx.random.normal((2, 5, 96)), mx.random.normal((3, 4, 64))
    inds, _ = __import__("zoo_registry.runtime.moe", fromlist=["route"]).route(moe.gate(x64), 2)
    assert expert_path(moe.switch_mlp, x64, inds) == "kernels"
    on = [q(x96), moe(x64)]
    mx.eval(on)
    with kernels.disabled():
        assert expert_path(moe.switch_mlp, x64, inds) == "gather"
        off = [q(x96), moe(x64)]
        mx.eval(off)
    for a, b in zip(on, off):
        np.testing.assert_allclose(np.array(a), np.array(b), atol=2e-5, rtol=1e-4)


def test_quantized_gradient_wrt_input():
    """Gradients flow through the kernels to the input as through MLX's quantized_matmul."""
    wq, s, b, _ = quantized(24, 64, 32, 4, mx.float32, seed=5)
    x = mx.random.normal((3, 64))

    def loss(x):
        return (kernels.quantized_matmul(x, wq, s, b, 32, 4) ** 2).sum()

    g = mx.grad(loss)(x)
    with kernels.disabled():
        ref = mx.grad(loss)(x)
    np.testing.assert_allclose(np.array(g), np.array(ref), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("bits,gs", [(4, 64), (8, 32)])
def test_tiny_hunyuan_quantized_logits(bits, gs):
    """A whole (tiny) HunYuan model, quantized: the same logits with the kernels on and off."""
    from zoo_registry.kernels.layers import served_layers
    from zoo_registry.loading import load_model

    model = load_model("hunyuan-tiny", quantize=bits, group_size=gs)
    served = served_layers(model)
    assert served.get("quantized", 0) > 0 and served.get("quantized_experts", 0) > 0, served
    tokens = mx.array([[1, 5, 9, 200, 3, 7, 11, 2]])
    for inp in (tokens, tokens[:, :1]):  # prefill and a single-token step
        on = model(inp)
        mx.eval(on)
        with kernels.disabled():
            off = model(inp)
            mx.eval(off)
        on, off = np.array(on), np.array(off)
        assert np.abs(on - off).max() <= 1e-4 * max(1.0, np.abs(off).max()), np.abs(on - off).max()
        assert (on.argmax(-1) == off.argmax(-1)).all()


def test_tiny_hunyuan_bfloat16_logits():
    from zoo_registry.loading import load_model

    model = load_model("hunyuan-tiny", dtype="bfloat16")
    tokens = mx.array([[1, 5, 9, 200, 3, 7]])
    on = model(tokens).astype(mx.float32)
    with kernels.disabled():
        off = model(tokens).astype(mx.float32)
    mx.eval(on, off)
    scale = float(mx.abs(off).max())
    assert float(mx.abs(on - off).max()) <= 0.05 * max(1.0, scale)  # bfloat16 activations between layers


def best_x86_isa_from_cpuinfo():
    """What the kernels must pick on this x86-64 Linux CPU, read from the kernel's flags (None elsewhere)."""
    import platform
    import re

    cpuinfo = Path("/proc/cpuinfo")
    if platform.machine() != "x86_64" or not cpuinfo.is_file() or os.environ.get("ZOO_KERNELS_ISA"):
        return None
    flags = set(re.search(r"^flags\s*:(.*)$", cpuinfo.read_text(), re.M).group(1).split())
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl", "fma"} <= flags:
        return "avx512bf16" if "avx512_bf16" in flags else "avx512"
    return "avx2" if {"avx2", "fma"} <= flags else "generic"


def test_status_reports_and_fallbacks(monkeypatch):
    st = kernels.status()
    assert st.available and st.isa in ("avx512bf16", "avx512", "avx2", "neon", "generic") and st.threads >= 1
    assert st.isa == (best_x86_isa_from_cpuinfo() or st.isa)  # on x86-64 Linux: the best the CPU has, not any
    assert "zoo kernels" in st.describe()
    monkeypatch.setattr(kernels, "_mlx_version", lambda: "0.0.1")
    mismatch = kernels._load()
    assert not mismatch.available and "built against mlx" in mismatch.reason and "rebuild" in mismatch.reason
    monkeypatch.setenv("ZOO_KERNELS", "off")
    off = kernels._load()
    assert not off.available and off.reason == "ZOO_KERNELS=off"
    with kernels.disabled():
        assert not kernels.active()
        x = mx.ones((1, 64))
        wq, s, b, _ = quantized(8, 64, 64, 4, mx.float32, seed=0)
        kernels.quantized_matmul(x, wq, s, b, 64, 4)  # MLX's op
    with pytest.raises(ValueError, match="not available|instruction set"):
        ext.set_isa("no-such-isa")


def test_zoo_load_reports_kernels(tmp_path):
    """``zoo load --json`` says which implementation runs; ZOO_KERNELS=off falls back with the reason."""
    import json
    import subprocess
    import sys

    def load(**env):
        out = subprocess.run([sys.executable, "-m", "zoo_registry.cli.main", "load", "hunyuan-tiny", "--quantize", "4",
                              "--json"], capture_output=True, text=True, env={**os.environ, **env}, cwd=tmp_path, check=True)
        return json.loads(out.stdout)["kernels"]

    on, off = load(), load(ZOO_KERNELS="off")
    assert on["active"] and on["layers"]["quantized"] > 0 and on["layers"]["quantized_experts"] > 0
    assert not off["active"] and off["reason"] == "ZOO_KERNELS=off" and off["layers"] == {}


def test_mlx_lm_quantized_checkpoint_runs_in_kernels(tmp_path):
    """A checkpoint quantized by ``mlx_lm.convert -q``: zoo serves its layers with the kernels and its
    logits equal mlx-lm's own model (MLX's ops) to float rounding."""
    import mlx_lm
    from mlx_lm import convert as mlx_convert
    from zoo_hunyuan.tiny import generate

    from zoo_registry.kernels.layers import served_layers
    from zoo_registry.loading import load_model

    out = tmp_path / "mlxlm-q4"
    mlx_convert(str(generate(tmp_path / "tiny")), mlx_path=str(out), quantize=True, q_group_size=32, q_bits=4)
    theirs, _ = mlx_lm.load(str(out))
    ours = load_model(out)
    served = served_layers(ours)
    assert served.get("quantized", 0) > 0 and served.get("quantized_experts", 0) > 0, served
    prompt = mx.array([[5, 17, 42, 8, 99, 3]])
    a, b = np.array(ours(prompt)), np.array(theirs(prompt))
    assert np.abs(a - b).max() <= 1e-4 * max(1.0, np.abs(b).max())
