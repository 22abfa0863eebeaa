"""QK-norm placement and scope of zoo's shared attention, against mlx-lm's own models.

zoo's ``Attention`` normalises queries and keys per head after RoPE (HunYuan, the default), per head
before RoPE (Qwen3) or over the whole projection before RoPE (OLMo 2). Each variant is compared with
the mlx-lm model that computes it (``mlx_lm.models.qwen3.Attention``, ``olmo2.Attention``,
``hunyuan.Attention``) on the same weights, through a prefill and decode steps with mlx-lm's
``KVCache``, on zoo's CPU kernels and on MLX's ops (``zoo_registry.kernels.disabled()``).
Cross-layer K/V sharing (CLA) is compared with the mlx-lm model of the consumer layer given the
owner's K/V projections. Tolerance: 1e-5, the README's float32 parity bound.
"""

from contextlib import nullcontext
from types import SimpleNamespace

import numpy as np
import pytest

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten
from mlx_lm.models import hunyuan, olmo2, qwen3
from mlx_lm.models.cache import KVCache

from zoo_registry import kernels
from zoo_registry.runtime.attention import Attention
from zoo_registry.runtime.rope import RoPE

D, NH, NKV, HD, THETA, EPS = 64, 4, 2, 16, 10000.0, 1e-6
PROMPT, DECODE = 7, 3
ATOL = 1e-5

# (placement, scope) -> the mlx-lm Attention computing it, built from (args, kv_proj)
QWEN3 = ("before_rope", "head")
OLMO2 = ("before_rope", "projection")
HUNYUAN = ("after_rope", "head")
MODES = {"qwen3": QWEN3, "olmo2": OLMO2, "hunyuan": HUNYUAN}
NAMES = {"qwen3": ("q_norm", "k_norm"), "olmo2": ("q_norm", "k_norm"), "hunyuan": ("query_layernorm", "key_layernorm")}
KERNELS = pytest.mark.parametrize("on", [True, False], ids=["kernels", "mlx-ops"])


def mlx_lm_attention(family: str, kv_proj: bool = True) -> nn.Module:
    common = dict(model_type=family, hidden_size=D, num_hidden_layers=1, intermediate_size=32,
                  num_attention_heads=NH, num_key_value_heads=NKV, rms_norm_eps=EPS, vocab_size=32,
                  rope_theta=THETA, max_position_embeddings=64)
    if family == "qwen3":
        return qwen3.Attention(qwen3.ModelArgs(**common, head_dim=HD, tie_word_embeddings=True))
    if family == "olmo2":
        return olmo2.Attention(olmo2.ModelArgs(**common, head_dim=HD))
    # mlx-lm's hunyuan: head_dim = hidden_size / heads, NTK-alpha RoPE (alpha 1: plain RoPE)
    args = SimpleNamespace(**common, attention_bias=False, use_qk_norm=True, rope_scaling={"alpha": 1.0})
    return hunyuan.Attention(kv_proj, args)


def zoo_attention(family: str, kv_proj: bool = True, seed: int = 0) -> Attention:
    placement, scope = MODES[family]
    attn = Attention(D, NH, NKV, HD, RoPE(HD, THETA), kv_proj=kv_proj, qk_norm=True, norm_eps=EPS,
                     qk_norm_placement=placement, qk_norm_scope=scope, qk_norm_names=NAMES[family])
    mx.random.seed(seed)
    attn.load_weights([(k, mx.random.normal(v.shape) * (0.3 if "norm" in k else 0.2) + ("norm" in k))
                       for k, v in tree_flatten(attn.parameters())])
    return attn


def same_weights(ref: nn.Module, attn: Attention, extra=()) -> nn.Module:
    ref.load_weights(list(tree_flatten(attn.parameters())) + list(extra))  # strict: every name matches
    mx.eval(ref.parameters())
    return ref


def steps(seed: int = 1):
    """A prompt of PROMPT tokens, then DECODE single tokens: inputs [B, L, D] and their masks."""
    x = mx.array(np.random.default_rng(seed).standard_normal((2, PROMPT + DECODE, D)).astype(np.float32))
    yield x[:, :PROMPT], "causal"
    for t in range(PROMPT, PROMPT + DECODE):
        yield x[:, t:t + 1], None


def close(got, ref, what):
    err = float(mx.abs(got - ref).max())
    assert got.shape == ref.shape and err <= ATOL, f"{what}: max |diff| {err:.3g} > {ATOL}"


@KERNELS
@pytest.mark.parametrize("family", ["qwen3", "olmo2", "hunyuan"])
def test_matches_mlx_lm_through_prefill_and_decode(family, on):
    attn = zoo_attention(family)
    ref = same_weights(mlx_lm_attention(family), attn)
    names = {k for k, _ in tree_flatten(attn.parameters())}
    q_name, k_name = NAMES[family]
    assert {f"{q_name}.weight", f"{k_name}.weight"} <= names  # the checkpoint's names, no rename rule
    widths = (NH * HD, NKV * HD) if family == "olmo2" else (HD, HD)
    assert (attn[q_name].weight.shape[0], attn[k_name].weight.shape[0]) == widths
    cache, ref_cache = KVCache(), KVCache()
    for i, (x, mask) in enumerate(steps()):
        with kernels.disabled() if not on else nullcontext():
            out, _ = attn(x, mask, cache)
            mx.eval(out)
        expected = ref(x, mask, ref_cache)
        close(out, expected[0] if isinstance(expected, tuple) else expected, f"{family} step {i}")
    assert cache.offset == ref_cache.offset == PROMPT + DECODE
    keys = cache.keys[..., :cache.offset, :]
    if family == "hunyuan":  # after RoPE zoo caches the weight-free k / rms(k) (the weight is in the query)
        keys = keys * attn[k_name].weight
    close(keys, ref_cache.keys[..., :cache.offset, :], f"{family} cached keys")


def _after_rope_projection_reference(attn: Attention, x, offset: int):
    """The whole-projection norm after RoPE, composed from MLX's ops: split, rotate, re-join, RMSNorm."""
    B, L, _ = x.shape
    rope = nn.RoPE(HD, base=THETA)

    def rotated(y, heads, norm):
        y = rope(y.reshape(B, L, heads, HD).transpose(0, 2, 1, 3), offset=offset)
        y = norm(y.transpose(0, 2, 1, 3).reshape(B, L, heads * HD))
        return y.reshape(B, L, heads, HD).transpose(0, 2, 1, 3)

    q = rotated(attn.q_proj(x), NH, attn["q_norm"])
    k = rotated(attn.k_proj(x), NKV, attn["k_norm"])
    v = attn.v_proj(x).reshape(B, L, NKV, HD).transpose(0, 2, 1, 3)
    return q, k, v


@KERNELS
def test_whole_projection_after_rope_matches_mlx_ops(on):
    """No released model normalises the whole projection after RoPE; the combination still computes it."""
    attn = Attention(D, NH, NKV, HD, RoPE(HD, THETA), qk_norm=True, norm_eps=EPS, qk_norm_scope="projection",
                     qk_norm_names=("q_norm", "k_norm"))
    mx.random.seed(3)
    attn.load_weights([(k, mx.random.normal(v.shape) * 0.3 + ("norm" in k))
                       for k, v in tree_flatten(attn.parameters())])
    cache, keys, values = KVCache(), [], []
    for i, (x, mask) in enumerate(steps(4)):
        with kernels.disabled() if not on else nullcontext():
            out, _ = attn(x, mask, cache)
            mx.eval(out)
        q, k, v = _after_rope_projection_reference(attn, x, offset=sum(t.shape[2] for t in keys))
        keys, values = keys + [k], values + [v]
        o = mx.fast.scaled_dot_product_attention(q, mx.concatenate(keys, 2), mx.concatenate(values, 2),
                                                 scale=HD**-0.5, mask=mask)
        close(out, attn.o_proj(o.transpose(0, 2, 1, 3).reshape(*x.shape[:2], -1)), f"step {i}")


@KERNELS
@pytest.mark.parametrize("family", ["qwen3", "olmo2", "hunyuan"])
def test_cla_consumer_matches_mlx_lm_given_the_owners_projections(family, on):
    """A consumer (kv_proj=False) equals mlx-lm's attention with the owner's k/v projections and its own
    norms. After RoPE it stores nothing (the owner's cache serves); before RoPE it keeps its own cache."""
    owner, consumer = zoo_attention(family, seed=5), zoo_attention(family, kv_proj=False, seed=6)
    kv = [(f"{p}.weight", owner[p].weight) for p in ("k_proj", "v_proj")]
    if family == "hunyuan":  # mlx-lm's hunyuan consumer takes the owner's raw projections itself
        ref = same_weights(mlx_lm_attention(family, kv_proj=False), consumer)
    else:
        ref = same_weights(mlx_lm_attention(family), consumer, kv)
    caches, ref_cache = (KVCache(), KVCache()), KVCache()
    for i, (x, mask) in enumerate(steps(7)):
        with kernels.disabled() if not on else nullcontext():
            _, shared = owner(x, mask, caches[0])
            out, passed = consumer(x, mask, caches[1], kv_states=shared)
            mx.eval(out)
        assert passed is shared
        if family == "hunyuan":
            expected = ref(x, mask, ref_cache, kv_states=tuple(shared))[0]
        else:
            expected = ref(x, mask, ref_cache)
        close(out, expected, f"{family} consumer step {i}")
    assert caches[1].offset == PROMPT + DECODE
    stored = caches[1].keys.shape[1]  # KV heads the consumer's own cache holds
    assert stored == (0 if family == "hunyuan" else NKV)


def test_cla_group_must_agree_on_the_norm():
    owner = zoo_attention("qwen3")
    consumer = zoo_attention("olmo2", kv_proj=False)
    _, shared = owner(mx.zeros((1, 2, D)), "causal")
    with pytest.raises(ValueError, match=r"must agree on qk_norm.*before_rope.*projection"):
        consumer(mx.zeros((1, 2, D)), "causal", kv_states=shared)


@pytest.mark.parametrize("kwargs, match", [
    ({"qk_norm_placement": "pre_rope"},
     r"qk_norm_placement must be one of 'after_rope', 'before_rope', got 'pre_rope'"),
    ({"qk_norm_scope": "heads"}, r"qk_norm_scope must be one of 'head', 'projection'"),
    ({"qk_norm_names": ("q_norm", "q_norm")}, r"two distinct attribute names"),
    ({"qk_norm_names": ("q_proj", "k_norm")}, r"not one of q_proj"),
    ({"qk_norm_names": "q_norm"}, r"two distinct attribute names"),
])
def test_bad_qk_norm_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Attention(D, NH, NKV, HD, RoPE(HD), qk_norm=True, **kwargs)


def test_default_is_hunyuans_norm_and_names():
    attn = Attention(D, NH, NKV, HD, RoPE(HD), qk_norm=True)
    assert attn.qk_norm_mode == ("after_rope", "head")
    norms = {k for k, _ in tree_flatten(attn.parameters()) if "norm" in k}
    assert norms == {"query_layernorm.weight", "key_layernorm.weight"}
    assert Attention(D, NH, NKV, HD, RoPE(HD), qk_norm_names=("q_norm", "k_norm")).qk_norm_mode is None
