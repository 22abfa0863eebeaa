"""Attention: GQA + QK-norm after RoPE against numpy, and the shape of cross-layer (CLA) sharing."""

import numpy as np
import pytest

import mlx.core as mx

from mlx.utils import tree_flatten  # noqa: E402

from zoo_registry.runtime.attention import Attention  # noqa: E402
from zoo_registry.runtime.rope import NTKAlphaRoPE  # noqa: E402

from test_runtime_rope import reference_rope  # noqa: E402


def make(kv_proj=True, qk_norm=True, bias=False, seed=0):
    attn = Attention(32, 4, 2, 8, NTKAlphaRoPE(8, 10000.0, 1000.0), kv_proj=kv_proj, qk_norm=qk_norm, bias=bias)
    mx.random.seed(seed)
    attn.load_weights([(k, mx.random.normal(v.shape) * 0.3 + (1.0 if "layernorm" in k else 0.0)) for k, v in tree_flatten(attn.parameters())])
    return attn


def rms(x, w, eps=1e-5):
    return x / np.sqrt((x**2).mean(-1, keepdims=True) + eps) * w


def reference(attn, x, kv=None):
    p = {k: np.array(v, dtype=np.float64) for k, v in tree_flatten(attn.parameters())}
    B, L, _ = x.shape
    q = (x @ p["q_proj.weight"].T).reshape(B, L, 4, 8).transpose(0, 2, 1, 3)
    k, v = kv if kv is not None else (x @ p["k_proj.weight"].T, x @ p["v_proj.weight"].T)
    k = k.reshape(B, L, 2, 8).transpose(0, 2, 1, 3)
    v = v.reshape(B, L, 2, 8).transpose(0, 2, 1, 3)
    base = attn.rope.base
    q, k = reference_rope(q, np.arange(L), base), reference_rope(k, np.arange(L), base)
    q, k = rms(q, p["query_layernorm.weight"]), rms(k, p["key_layernorm.weight"])  # after RoPE
    k, v = np.repeat(k, 2, axis=1), np.repeat(v, 2, axis=1)  # GQA: each kv head serves 2 q heads
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(8) + np.triu(np.full((L, L), -np.inf), 1)
    a = np.exp(s - s.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    o = (a @ v).transpose(0, 2, 1, 3).reshape(B, L, -1)
    return o @ p["o_proj.weight"].T


def test_gqa_qknorm_after_rope_matches_numpy():
    attn = make()
    x = np.random.default_rng(0).standard_normal((2, 6, 32)).astype(np.float32)
    out, _ = attn(mx.array(x), mask="causal")
    np.testing.assert_allclose(np.array(out), reference(attn, x.astype(np.float64)), atol=1e-4)


def test_cla_consumer_has_no_kv_projection_and_reuses_kv():
    owner, consumer = make(seed=1), make(kv_proj=False, seed=2)
    names = {k for k, _ in tree_flatten(consumer.parameters())}
    assert not any(n.startswith(("k_proj", "v_proj")) for n in names)
    assert {"q_proj.weight", "o_proj.weight", "query_layernorm.weight", "key_layernorm.weight"} <= names
    x = np.random.default_rng(3).standard_normal((1, 5, 32)).astype(np.float32)
    _, kv = owner(mx.array(x), mask="causal")
    out, kv_out = consumer(mx.array(x), mask="causal", kv_states=kv)
    assert kv_out is kv  # passed on unchanged (raw, pre-RoPE)
    ref = reference(consumer, x.astype(np.float64), kv=tuple(np.array(t, dtype=np.float64) for t in kv))
    np.testing.assert_allclose(np.array(out), ref, atol=1e-4)


def test_cla_consumer_without_kv_states_is_an_error():
    with pytest.raises(ValueError, match="needs kv_states"):
        make(kv_proj=False)(mx.zeros((1, 2, 32)))


def test_attention_bias_is_optional():
    assert "bias" in make(bias=True).q_proj and "bias" not in make().q_proj


def test_o_bias_can_differ_from_qkv_bias():
    """Qwen2: biases on q/k/v, none on o_proj; Llama's attention_bias: all four."""
    from zoo_registry.runtime.attention import Attention
    from zoo_registry.runtime.rope import RoPE

    qwen2 = Attention(32, 4, 2, 8, RoPE(8), bias=True, o_bias=False)
    assert "bias" in qwen2.q_proj and "bias" in qwen2.k_proj and "bias" in qwen2.v_proj and "bias" not in qwen2.o_proj
    assert "bias" in Attention(32, 4, 2, 8, RoPE(8), bias=True).o_proj
