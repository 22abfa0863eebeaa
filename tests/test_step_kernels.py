"""zoo's CPU ops for the rest of a decode step (csrc/step.cpp, zoo_registry.kernels.step) against MLX.

Each op is compared with MLX computing the same thing in float32 (``mx.fast.rms_norm``,
``mx.fast.rope``, ``mx.fast.scaled_dot_product_attention``, ``mx.dequantize``), cast to the output
dtype: the kernels must agree to float32 rounding plus one rounding of the output. Then zoo's
attention layer, RMSNorm and a whole tiny HunYuan, decoding with mlx-lm's caches, are compared
with the same code on MLX's ops (``kernels.step.disabled()``).
"""

import os
from contextlib import nullcontext

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")
nn = pytest.importorskip("mlx.nn")

from zoo_registry import kernels  # noqa: E402

if not kernels.available():
    if os.environ.get("CI"):
        pytest.fail(f"zoo's CPU kernels must be built in CI: {kernels.status().reason}", pytrace=False)
    pytest.skip(f"zoo's CPU kernels are not built: {kernels.status().reason}", allow_module_level=True)

from zoo_registry.kernels import step  # noqa: E402
from zoo_registry.runtime import rope as ropes  # noqa: E402

ext = kernels._EXT
DTYPES = [mx.float32, mx.bfloat16, mx.float16]
ROUNDING = {mx.float32: 0.0, mx.bfloat16: 2.0**-8, mx.float16: 2.0**-11}  # half an ulp, relative


def check(got, ref, what, scale=1.0, extra=0.0):
    """``got`` equals the float32 reference ``ref`` to float32 rounding (relative to ``scale``, the size
    of the terms) plus one rounding of the output (``extra``: a further absolute error the reference
    itself carries)."""
    assert got.shape == ref.shape, what
    g, r = np.array(got.astype(mx.float32)), np.array(ref.astype(mx.float32))
    tol = 2e-5 * scale + 2 * ROUNDING[got.dtype] * np.abs(r) + 1e-6 + extra
    bad = ~(np.abs(g - r) <= tol)
    assert not bad.any(), f"{what}: {bad.sum()} of {bad.size} differ, max {np.nanmax(np.abs(g - r)):.3g}"


def f32(a):
    return a.astype(mx.float32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 512), (2, 3, 37), (5, 1000), (7,)])
def test_rms_norm(dtype, shape):
    mx.random.seed(1)
    x = mx.random.normal(shape).astype(dtype) * 3
    w = mx.random.normal(shape[-1:]).astype(dtype)
    for weight in (w, None):
        got = step.rms_norm(x, weight, 1e-5)
        ref = mx.fast.rms_norm(f32(x), None if weight is None else f32(weight), 1e-5).astype(dtype)
        assert got.dtype == dtype
        check(got, ref, f"rms_norm {shape} {dtype} weight={weight is not None}")
    strided = x.T if x.ndim == 2 else x  # a transposed (not row-contiguous) input
    check(step.rms_norm(strided, None, 1e-6), mx.fast.rms_norm(f32(strided), None, 1e-6).astype(dtype), "strided")


ROPES = {
    "default": lambda d: ropes.RoPE(d, 10000.0),
    "traditional": lambda d: ropes.RoPE(d, 500000.0, traditional=True),
    "linear": lambda d: ropes.LinearRoPE(d, 10000.0, factor=4.0),
    "ntk_alpha": lambda d: ropes.NTKAlphaRoPE(d, 10000.0, alpha=1000.0),
    "dynamic": lambda d: ropes.DynamicNTKRoPE(d, 10000.0, factor=2.0, max_position_embeddings=16),
    "llama3": lambda d: ropes.Llama3RoPE(d, 500000.0, factor=8.0, original_max_position_embeddings=64),
}


@pytest.mark.parametrize("kind", sorted(ROPES))
@pytest.mark.parametrize("dtype", DTYPES)
def test_heads_rope_and_norm(kind, dtype):
    """Split into heads, RoPE (every rotary class of the runtime, partial dims), QK-norm before or after."""
    mx.random.seed(2)
    for B, L, H, hd, rope_dims, offset in ((1, 1, 4, 128, 128, 0), (2, 5, 3, 64, 32, 17), (1, 3, 2, 96, 96, 4000)):
        rope = ROPES[kind](rope_dims)
        x = mx.random.normal((B, L, H * hd + 8)).astype(dtype)[..., 8:]  # a column slice, as of a fused product
        w = mx.random.normal((hd,)).astype(dtype)
        for norm, weight, first in ((False, None, False), (True, None, False), (True, w, False), (True, w, True)):
            got = step.heads(x, H, rope, offset, norm=norm, norm_weight=weight, eps=1e-6, norm_first=first)
            ref = f32(x).reshape(B, L, H, hd).transpose(0, 2, 1, 3)
            rn = lambda r: mx.fast.rms_norm(r, None if weight is None else f32(weight), 1e-6)  # noqa: E731
            ref = rn(ref) if norm and first else ref
            ref = rope(ref, offset=offset)
            ref = rn(ref) if norm and not first else ref
            what = f"{kind} {dtype} B{B} L{L} H{H} hd{hd} dims{rope_dims} offset{offset} norm={norm} first={first}"
            # a float32 angle (offset + L) * f is itself rounded: cos/sin carry ~(offset + L) * 2^-24 each
            angle = 8 * (offset + L) * 2.0**-24 * float(mx.abs(ref).max())
            check(got, ref.astype(got.dtype), what, scale=8.0, extra=angle)
    plain = mx.random.normal((2, 3, 4 * 16)).astype(dtype)  # no rotation: a pure split into heads
    assert mx.array_equal(step.heads(plain, 4), plain.reshape(2, 3, 4, 16).transpose(0, 2, 1, 3)).item()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_attention(dtype, threads):
    """GQA, decode and short prefill, causal, K/V as slices of a larger (cache) buffer."""
    before = ext.threads()
    ext.set_threads(threads)
    try:
        mx.random.seed(3)
        for B, Hq, Hk, L, S, mask in ((1, 4, 1, 1, 129, None), (2, 8, 2, 7, 20, "causal"), (1, 6, 3, 5, 5, "causal"),
                                      (2, 2, 2, 1, 1, None), (1, 32, 8, 1, 700, None), (1, 4, 4, 3, 9, None)):
            q = mx.random.normal((B, Hq, L, 64)).astype(dtype)
            kbuf, vbuf = (mx.random.normal((B, Hk, S + 11, 64)).astype(dtype) for _ in range(2))
            k, v = kbuf[:, :, :S], vbuf[:, :, :S]
            assert step.attention_serves(q, k, v, mask)
            got = step.attention(q, k, v, 0.125, mask)
            ref = mx.fast.scaled_dot_product_attention(f32(q), f32(k), f32(v), scale=0.125, mask=mask)
            check(got, ref.transpose(0, 2, 1, 3).reshape(B, L, -1).astype(dtype), f"attention {B, Hq, Hk, L, S, mask}")
    finally:
        ext.set_threads(before)


def test_attention_leaves_what_it_does_not_take_to_mlx():
    q, k = mx.zeros((1, 2, 3, 8)), mx.zeros((1, 2, 5, 8))
    assert not step.attention_serves(q, k, k, mx.zeros((3, 5)))  # an array mask
    assert not step.attention_serves(q, (k, k, k), k, None)  # a quantized cache's triples
    assert not step.attention_serves(mx.zeros((1, 2, 600, 8)), mx.zeros((1, 2, 600, 8)), mx.zeros((1, 2, 600, 8)), "causal")
    with step.disabled():
        assert not step.attention_serves(q, k, k, None)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("group_size", [32, 64, 128])
@pytest.mark.parametrize("sdt", [mx.float32, mx.bfloat16, mx.float16])
def test_quantized_rows(bits, group_size, sdt):
    mx.random.seed(4)
    wq, s, b = mx.quantize(mx.random.normal((101, 384)).astype(sdt), group_size=group_size, bits=bits)
    for ids in (mx.array([[3, 100, 0], [5, 5, 7]]), mx.array([42], dtype=mx.uint32), mx.array([[1, 2], [3, 99]]).T):  # .T: strided
        assert step.rows_serve(wq, s, b, group_size, bits)
        got = step.quantized_rows(ids, wq, s, b, group_size, bits)
        ref = mx.dequantize(wq[ids], f32(s[ids]), f32(b[ids]), group_size=group_size, bits=bits).astype(sdt)
        assert got.dtype == sdt
        check(got, ref, f"rows {bits} {group_size} {sdt} {ids.shape}")


def test_gradients_go_through_mlx():
    mx.random.seed(5)
    x, w = mx.random.normal((2, 3, 64)), mx.random.normal((16,))

    def loss(x, w):
        h = step.heads(x, 4, ropes.RoPE(16), 3, norm=True, norm_weight=w)
        return (step.attention(h, h, h, 0.25, "causal") * step.rms_norm(x, None, 1e-5)).sum()

    got = mx.grad(loss, argnums=(0, 1))(x, w)
    with step.disabled():
        ref = mx.grad(lambda x, w: (mx.fast.scaled_dot_product_attention(
            *(3 * [step.heads(x, 4, ropes.RoPE(16), 3, norm=True, norm_weight=w)]), scale=0.25, mask="causal"
        ).transpose(0, 2, 1, 3).reshape(2, 3, 64) * step.rms_norm(x, None, 1e-5)).sum(), argnums=(0, 1))(x, w)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(np.array(g), np.array(r), rtol=1e-4, atol=1e-4)


def _attention_layer(qk_norm, dtype, kv_proj=True):
    from zoo_registry.runtime.attention import Attention

    mx.random.seed(6)
    layer = Attention(96, 6, 2, 32, ropes.NTKAlphaRoPE(32, 10000.0, 1000.0), qk_norm=qk_norm, kv_proj=kv_proj)
    layer.update(nn.utils.tree_map(lambda p: (mx.random.normal(p.shape) * 0.3).astype(dtype), layer.parameters()))
    return layer


@pytest.mark.parametrize("cache_kind", ["kv", "rotating", "quantized"])
@pytest.mark.parametrize("dtype", [mx.float32, mx.bfloat16])
def test_attention_layer_decodes_like_mlx(cache_kind, dtype):
    """zoo's attention layer with mlx-lm's caches: prefill then decode steps over caches of growing
    length, step kernels on vs off; the caches stay mlx-lm's classes."""
    from mlx_lm.models.base import create_attention_mask
    from mlx_lm.models.cache import KVCache, QuantizedKVCache, RotatingKVCache

    owner, consumer = _attention_layer(True, dtype), _attention_layer(True, dtype, kv_proj=False)
    make = {"kv": KVCache, "rotating": lambda: RotatingKVCache(max_size=12), "quantized": lambda: QuantizedKVCache(32, 8)}
    caches = {on: [make[cache_kind](), make[cache_kind]()] for on in (True, False)}
    mx.random.seed(7)
    steps = [mx.random.normal((1, n, 96)).astype(dtype) for n in (9, 1, 1, 3, 1, 1, 1)]
    for i, x in enumerate(steps):
        outs = {}
        for on in (True, False):
            c0, c1 = caches[on]
            mask = create_attention_mask(x, c0)
            ctx = step.disabled() if not on else nullcontext()
            with ctx:
                y, kv = owner(x, mask, c0)
                y2, _ = consumer(x, mask, c1, kv)
                outs[on] = f32(y + y2)
                mx.eval(outs[on])
        # bfloat16: both paths round intermediates (q/k/v, heads, scores) to bfloat16, at different points
        extra = 0.0 if dtype == mx.float32 else 2.0**-6 * float(mx.abs(outs[False]).max())
        check(outs[True], outs[False], f"{cache_kind} {dtype} step {i}", scale=10.0, extra=extra)
    assert type(caches[True][0]) is type(make[cache_kind]())


def test_rms_norm_layer_and_what_adopt_leaves_alone():
    """zoo's RMSNorm is ``nn.RMSNorm`` computed by the kernel and counted as served; the loader's
    ``adopt`` leaves MLX's own ``RMSNorm`` (delegated mlx-lm models stay mlx-lm's bit for bit)."""
    from zoo_registry.kernels.layers import adopt, served_layers
    from zoo_registry.runtime.norm import RMSNorm

    mx.random.seed(9)
    ours, theirs = RMSNorm(8), nn.RMSNorm(8)
    ours.weight = theirs.weight = mx.random.normal((8,))
    model = nn.Sequential(ours, theirs)
    assert adopt(model) == 0 and type(model.layers[1]) is nn.RMSNorm
    assert served_layers(model) == {"norms": 1}
    x = mx.random.normal((2, 8))
    check(ours(x), theirs(x), "zoo's RMSNorm")


@pytest.mark.parametrize("quantize", [None, 4])
def test_tiny_hunyuan_decode_same_tokens(quantize):
    """A whole tiny HunYuan (QK-norm, CLA, NTK-alpha RoPE, quantized embedding when 4-bit) decoding
    greedily with mlx-lm's cache: logits equal with the step kernels on and off at every step."""
    from mlx_lm.models.cache import make_prompt_cache

    from zoo_registry.kernels.layers import served_layers
    from zoo_registry.loading import load_model

    model = load_model("hunyuan-tiny", **({"quantize": quantize, "group_size": 64} if quantize else {}))
    served = served_layers(model)
    assert served["norms"] > 0 and served["attention"] > 0, served
    prompt = mx.array([[1, 5, 9, 200, 3, 7, 11, 2]])
    caches = {on: make_prompt_cache(model) for on in (True, False)}
    toks = {True: prompt, False: prompt}
    for i in range(6):
        logits = {}
        for on in (True, False):
            with (nullcontext() if on else step.disabled()):
                logits[on] = model(toks[on], cache=caches[on])[:, -1]
                mx.eval(logits[on])
        a, b = np.array(logits[True]), np.array(logits[False])
        assert np.abs(a - b).max() <= 1e-4 * max(1.0, np.abs(b).max()), (i, np.abs(a - b).max())
        nxt = mx.array([[int(b.argmax())]])
        assert int(a.argmax()) == int(b.argmax())
        toks = {True: nxt, False: nxt}


@pytest.mark.parametrize("xdt", DTYPES)
@pytest.mark.parametrize("rows", [1, 3, 8])
def test_float32_weights_in_the_kernel(xdt, rows):
    """zoo's ``Linear`` with a float32 weight: the kernel for one-row products (and without a fast
    BLAS), MLX's matmul otherwise; the same result as MLX's float32 product either way."""
    from zoo_registry.runtime.linear import Linear, f32_kernel, fast_sgemm

    mx.random.seed(8)
    layer = Linear(77, 45, bias=True)
    x = mx.random.normal((rows, 77)).astype(xdt)
    assert f32_kernel(x, layer.weight) == (rows <= 3 or not fast_sgemm())
    got = layer(x)
    ref = f32(x) @ layer.weight.T + layer.bias
    assert got.dtype == ref.dtype
    check(got, ref, f"float32 Linear rows={rows} x {xdt}", scale=10.0)
    got_strided = ext.dense_mm(x.T.T[:, ::1], layer.weight)
    check(got_strided, f32(x) @ layer.weight.T, "strided", scale=10.0)
