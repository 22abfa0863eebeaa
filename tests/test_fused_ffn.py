"""zoo's fused SwiGLU MLP / MoE block kernel (csrc/moe*.cpp, runtime/fused.py) against MLX's own ops.

The reference is the unfused block run on MLX's ops (``kernels.disabled()``, what ``ZOO_KERNELS=off``
runs): the router matmul, softmax, top-k, SwitchGLU's ``gather_qmm``/``gather_mm``, the weighted
combine and the shared MLP. Both are compared with the exact value (the same block in float32 on
MLX's ops): the fused kernel keeps every intermediate in float32 and rounds the output once, so it
must be as close to it as the unfused path (which rounds its intermediates to bfloat16/float16
activations, and whose own bfloat16 products accumulate in bfloat16) or within float32
accumulation error plus one rounding of the output.
"""

import os

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")
nn = pytest.importorskip("mlx.nn")

from mlx.utils import tree_flatten  # noqa: E402
from kernel_fixtures import each_isa, isas, require_kernels  # noqa: E402,F401 (each_isa: a fixture)
from zoo_registry import kernels  # noqa: E402
from zoo_registry.runtime import fused  # noqa: E402
from zoo_registry.runtime.mlp import MLP  # noqa: E402
from zoo_registry.runtime.moe import MoE  # noqa: E402

require_kernels(kernels.fused_ffn_available())
ext = kernels._EXT
ROUNDING = {mx.float32: 0.0, mx.bfloat16: 2.0**-8, mx.float16: 2.0**-11}  # half an ulp, relative
MOE = MoE.fused
every_isa = pytest.mark.parametrize("each_isa", isas(), indirect=True)


def randomize(module, seed, std=0.2):
    mx.random.seed(seed)
    module.load_weights([(k, mx.random.normal(v.shape) * std) for k, v in tree_flatten(module.parameters())])
    return module


def quantize(module, bits, gs):
    nn.quantize(module, group_size=gs, bits=bits,
                class_predicate=lambda p, m: hasattr(m, "to_quantized") and not p.endswith("wg"))
    return module


def fused_and_unfused(block, x, fused_fn):
    """The block's output fused, unfused (MLX's ops) and in float32 (MLX's ops on the float32
    block: the exact value both approximate); asserts the fused kernel served the first."""
    assert fused_fn(block, x) is not None, "the fused kernel did not serve this block"
    on = block(x)
    mx.eval(on)
    with kernels.disabled():
        assert fused_fn(block, x) is None
        off = block(x)
        mx.eval(off)
        dtypes = {k: v.dtype for k, v in tree_flatten(block.parameters())}
        block.set_dtype(mx.float32)  # bfloat16/float16 -> float32 -> back is exact
        exact = block(x.astype(mx.float32))
        mx.eval(exact)
        block.load_weights([(k, v.astype(dtypes[k])) for k, v in tree_flatten(block.parameters())])
    return on, off, exact


def close(on, off, exact, what):
    """``on`` (fused) as close to ``exact`` as ``off`` (unfused) is, or within float32 accumulation
    error plus one rounding of the output (the fused block rounds once, at the end)."""
    assert on.shape == off.shape and on.dtype == off.dtype, what
    a, b, e = (np.array(t.astype(mx.float32)) for t in (on, off, exact))
    scale = max(1e-3, float(np.abs(e).max()))
    err, err_off = float(np.abs(a - e).max()), float(np.abs(b - e).max())
    bound = max(1.25 * err_off, (2e-5 + ROUNDING[on.dtype]) * scale)
    assert err <= bound, f"{what}: fused error {err:.3g}, unfused {err_off:.3g}, output scale {scale:.3g}"


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("gs", [32, 64, 128])
@pytest.mark.parametrize("dtype", [mx.float32, mx.bfloat16])
@every_isa
def test_quantized_moe_matches_unfused(each_isa, bits, gs, dtype):
    """Every bit width and group size; 1, 3 and 40 tokens over 7 experts (some get none, some one,
    some many: matrix-vector and tiled-GEMM experts); top-1 raw and top-3 renormalised routing."""
    D, H, Hs = 2 * gs, gs, 3 * gs
    for top_k, shared, seed in [(1, Hs, 0), (3, None, 1), (3, Hs, 2)]:
        block = quantize(randomize(MoE(D, H, 7, top_k, shared_hidden_dims=shared), seed), bits, gs)
        block.set_dtype(dtype)
        for T in (1, 3, 40):
            x = (mx.random.normal((1, T, D), key=mx.random.key(seed + T))).astype(dtype)
            close(*fused_and_unfused(block, x, MOE), f"{bits}-bit g{gs} top{top_k} T={T}")


@pytest.mark.parametrize("wdt", [mx.bfloat16, mx.float16, mx.float32])
@every_isa
def test_float_moe_matches_unfused_odd_sizes(each_isa, wdt):
    """Float experts with odd widths; a renormalised top-1 (A13B's list form), top-4 of 5, and 40
    tokens over 3 experts (float32 weights: the per-row path below 16 rows, tiles above)."""
    for D, H, Hs, E, k, renorm in [(37, 19, 23, 5, 4, None), (129, 45, 45, 6, 1, True), (64, 8, 72, 3, 2, False)]:
        block = randomize(MoE(D, H, E, k, shared_hidden_dims=Hs, renormalize=renorm), seed=D)
        block.set_dtype(wdt)
        for shape in [(1, 1, D), (2, 5, D), (40, D)]:
            x = mx.random.normal(shape, key=mx.random.key(H)).astype(wdt)
            close(*fused_and_unfused(block, x, MOE), f"{wdt} D={D} H={H} k={k} {shape}")


def test_mixed_formats_and_float32_activations():
    """Experts 4-bit, shared MLP 8-bit with another group size; float32 input over bfloat16 scales."""
    block = randomize(MoE(128, 64, 4, 2, shared_hidden_dims=192), seed=3)
    nn.quantize(block.switch_mlp, group_size=32, bits=4)
    nn.quantize(block.shared_mlp, group_size=64, bits=8)
    block.set_dtype(mx.bfloat16)
    x = mx.random.normal((2, 3, 128), key=mx.random.key(1))
    on, off, exact = fused_and_unfused(block, x, MOE)
    assert on.dtype == off.dtype == mx.float32
    close(on, off, exact, "mixed")


@pytest.mark.parametrize("fmt", ["q4g64", "q8g32", "bfloat16", "float16", "float32"])
@pytest.mark.parametrize("rows", [1, 3, 17])
@every_isa
def test_dense_mlp_matches_unfused(each_isa, fmt, rows):
    D, H = (128, 192) if fmt.startswith("q") else (45, 101)
    block = randomize(MLP(D, H), seed=rows)
    if fmt.startswith("q"):
        quantize(block, int(fmt[1]), int(fmt[3:]))
        dtype = mx.float32
    else:
        dtype = getattr(mx, fmt)
    block.set_dtype(dtype if dtype != mx.float32 else mx.bfloat16)
    x = mx.random.normal((1, rows, D), key=mx.random.key(rows)).astype(dtype)
    close(*fused_and_unfused(block, x, fused.mlp), f"{fmt} rows={rows}")


def test_two_threads_large_block():
    """Blocks big enough to be split over the thread pool give the same result as one thread."""
    block = quantize(randomize(MoE(1024, 512, 8, 4, shared_hidden_dims=1024), seed=9), 4, 64)
    x = mx.random.normal((1, 6, 1024), key=mx.random.key(2))
    before = ext.threads()
    try:
        out = {}
        for n in (1, 2):
            ext.set_threads(n)
            out[n] = block(x[:, :1]), block(x)
            mx.eval(out[n])
    finally:
        ext.set_threads(before)
    for a, b in zip(out[1], out[2]):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-5)
    close(*fused_and_unfused(block, x, MOE), "2 threads")


def test_gradient_wrt_input_equals_unfused():
    block = quantize(randomize(MoE(64, 32, 4, 2, shared_hidden_dims=32), seed=4), 4, 32)
    x = mx.random.normal((2, 3, 64), key=mx.random.key(5))

    def loss(x):
        return (block(x) ** 2).sum()

    g = mx.grad(loss)(x)
    with kernels.disabled():
        ref = mx.grad(loss)(x)
    ref = np.array(ref)  # d loss/dx = 2 y dy/dx: y is the fused output, so float32 rounding of y shows
    np.testing.assert_allclose(np.array(g), ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())


def test_unserved_blocks_keep_the_unfused_path():
    """A bias, another quantization mode, a quantized router, a sharded layer or another device:
    no fused call."""
    x = mx.random.normal((1, 2, 64))
    assert fused.mlp(randomize(MLP(64, 32), 0), x) is not None
    assert fused.mlp(quantize(randomize(MLP(64, 32, bias=True), 0), 4, 32), x) is None
    mlp = randomize(MLP(64, 32), 0)
    nn.quantize(mlp, mode="mxfp4")
    assert fused.mlp(mlp, x) is None
    mlp = randomize(MLP(64, 32), 0)
    mlp.down_proj = nn.layers.distributed.ShardedToAllLinear.from_linear(mlp.down_proj)
    assert fused.mlp(mlp, x) is None
    block = quantize(randomize(MoE(64, 32, 4, 2), 0), 4, 32)
    assert block.fused(x) is not None
    nn.quantize(block.gate, group_size=32, bits=4)
    assert block.fused(x) is None
    with mx.stream(mx.gpu) if mx.metal.is_available() else kernels.disabled():
        assert quantize(randomize(MoE(64, 32, 4, 2), 0), 4, 32).fused(x) is None


def test_fused_ffn_checks_its_arguments():
    wq, s, b = mx.quantize(mx.random.normal((32, 64)), group_size=32, bits=4)
    x = mx.random.normal((2, 64))
    with pytest.raises(ValueError, match="formats need"):
        ext.fused_ffn(x, None, [], [], [wq, s, b], [4, 32, 4, 32, 4, 32], 0, False)
    with pytest.raises(ValueError, match="group size"):
        ext.fused_ffn(x, None, [], [], [wq, s, b] * 3, [4, 16] * 3, 0, False)
    with pytest.raises(ValueError, match="does not take 32 inputs|return the model width"):
        ext.fused_ffn(x, None, [], [], [wq, s, b] * 3, [4, 32] * 3, 0, False)


def test_zoo_load_reports_fused_blocks(tmp_path):
    """``zoo load --json`` counts the blocks that run fused; ``ZOO_FUSED=off`` shows none."""
    import json
    import subprocess
    import sys

    def layers(**env):
        out = subprocess.run([sys.executable, "-m", "zoo_registry.cli.main", "load", "hunyuan-tiny", "--quantize", "4",
                              "--json"], capture_output=True, text=True, env={**os.environ, **env}, cwd=tmp_path, check=True)
        return json.loads(out.stdout)["kernels"]["layers"]

    on, off = layers(), layers(ZOO_FUSED="off")
    assert on["fused_moe_blocks"] > 0 and on["quantized_experts"] > 0, on
    assert "fused_moe_blocks" not in off and off["quantized_experts"] == on["quantized_experts"], off


def test_strided_input():
    """An input that is a strided view (a slice of a larger array) is read through its strides."""
    block = quantize(randomize(MoE(64, 32, 5, 2, shared_hidden_dims=64), seed=6), 8, 32)
    big = mx.random.normal((2, 7, 128), key=mx.random.key(8))
    x = big[:, ::2, 32:96]  # [2, 4, 64], neither rows nor the batch contiguous
    on = block(x)
    with kernels.disabled():
        off = block(mx.contiguous(x))
    np.testing.assert_allclose(np.array(on), np.array(off), rtol=1e-5, atol=1e-5)
