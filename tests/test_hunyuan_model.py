"""The HunYuan model: parity with mlx-lm, cached decode, batches, dtypes, generation, parameter names."""

import numpy as np
import pytest

import mlx.core as mx

from mlx.utils import tree_flatten  # noqa: E402
from mlx_lm.models import hunyuan as mlx_hunyuan  # noqa: E402
from mlx_lm.models import hunyuan_v1_dense as mlx_dense  # noqa: E402
from mlx_lm.models.cache import make_prompt_cache  # noqa: E402

from zoo_hunyuan.model import Model, build  # noqa: E402

ROPE = {"type": "dynamic", "alpha": 1000.0, "factor": 1.0}
BASE = dict(vocab_size=96, hidden_size=64, intermediate_size=48, num_hidden_layers=4, num_attention_heads=8,
            num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0, rope_scaling=ROPE, attention_bias=False)
CONFIGS = {
    # HunYuan-Large style: CLA pairs, top-1, shared MLP, QK-norm.
    "cla_top1": dict(BASE, model_type="hunyuan", num_experts=4, moe_topk=1, num_shared_expert=1, use_mixed_mlp_moe=True,
                     use_qk_norm=True, use_cla=True, cla_share_factor=2, tie_word_embeddings=True),
    # A13B style: top-k (per-layer list), no CLA, per-layer expert width.
    "topk": dict(BASE, model_type="hunyuan_v1_moe", num_experts=6, moe_topk=[2, 3, 2, 3], num_shared_expert=[1, 1, 2, 1],
                 moe_intermediate_size=[32, 32, 40, 32], use_mixed_mlp_moe=True, use_qk_norm=True, use_cla=False,
                 cla_share_factor=2, tie_word_embeddings=True),
    # Legacy Hunyuan-7B: model_type hunyuan with one "expert" = dense MLP.
    "legacy_dense": dict(BASE, model_type="hunyuan", num_experts=1, moe_topk=1, num_shared_expert=1, use_mixed_mlp_moe=False,
                         use_qk_norm=True, use_cla=False, cla_share_factor=2, tie_word_embeddings=True),
    # hunyuan_v1_dense: head_dim != hidden / heads, untied head.
    "v1_dense": dict(BASE, model_type="hunyuan_v1_dense", head_dim=12, use_qk_norm=True, tie_word_embeddings=False),
}


def random_weights(model, seed=0, std=0.1):
    """Normal(0, std) everywhere; norms around 1 so every layer contributes."""
    mx.random.seed(seed)
    return [(k, (1.0 if "norm" in k else 0.0) + mx.random.normal(v.shape) * std) for k, v in tree_flatten(model.parameters())]


def zoo_model(name, seed=0):
    model = build(CONFIGS[name])
    model.load_weights(random_weights(model, seed))
    return model


def ids(B=2, L=11, seed=1):
    return mx.array(np.random.default_rng(seed).integers(0, BASE["vocab_size"], (B, L)))


# README, "Numerics": zoo matches mlx-lm's modules within 1e-5 and cached decode equals the full pass
# within 1e-5 (measured up to 2e-6: float rounding, sums ordered differently; exactly 0 on MLX's bundled BLAS)
PARITY = 1e-5


def max_diff(a, b):
    return float(mx.abs(a.astype(mx.float32) - b.astype(mx.float32)).max())


@pytest.mark.parametrize(
    "name, ref_module",
    [("cla_top1", mlx_hunyuan), ("legacy_dense", mlx_hunyuan), ("v1_dense", mlx_dense)],
)
def test_parity_with_mlx_lm(name, ref_module):
    """Same weights copied by name into mlx-lm's module; same logits (mlx-lm is the oracle for CLA + top-1)."""
    ref = ref_module.Model(ref_module.ModelArgs.from_dict(CONFIGS[name]))
    weights = random_weights(ref)
    ref.load_weights(weights)
    model = build(CONFIGS[name])
    model.load_weights(weights, strict=True)  # identical parameter names, nothing missing or extra
    x = ids()
    assert max_diff(model(x), ref(x)) <= PARITY


def test_mlx_lm_saved_checkpoint_loads_as_is(tmp_path):
    ref = mlx_hunyuan.Model(mlx_hunyuan.ModelArgs.from_dict(CONFIGS["cla_top1"]))
    ref.load_weights(random_weights(ref, seed=3))
    path = tmp_path / "model.safetensors"
    mx.save_safetensors(str(path), dict(tree_flatten(ref.parameters())))
    model = build(CONFIGS["cla_top1"])
    model.load_weights(str(path), strict=True)
    x = ids(B=1)
    assert max_diff(model(x), ref(x)) <= PARITY


def test_cla_layers_have_no_kv_projection():
    names = {k for k, _ in tree_flatten(zoo_model("cla_top1").parameters())}
    for i in range(4):
        has_kv = f"model.layers.{i}.self_attn.k_proj.weight" in names
        assert has_kv == (i % 2 == 0)
        assert (f"model.layers.{i}.self_attn.v_proj.weight" in names) == has_kv
        assert f"model.layers.{i}.self_attn.key_layernorm.weight" in names
    assert "model.layers.1.mlp.gate.wg.weight" in names and "model.layers.1.mlp.shared_mlp.up_proj.weight" in names
    assert "model.layers.1.mlp.switch_mlp.down_proj.weight" in names
    assert "lm_head.weight" not in names


def test_untied_head_and_per_layer_shapes():
    params = dict(tree_flatten(zoo_model("topk").parameters())) | dict(tree_flatten(zoo_model("v1_dense").parameters()))
    assert params["model.layers.2.mlp.switch_mlp.gate_proj.weight"].shape == (6, 40, 64)
    assert params["model.layers.2.mlp.shared_mlp.gate_proj.weight"].shape == (96, 64)  # 2 shared experts * 48
    assert params["model.layers.0.self_attn.q_proj.weight"].shape == (96, 64)  # v1_dense: 8 heads * head_dim 12
    assert params["lm_head.weight"].shape == (96, 64)


def test_model_has_no_sanitize():
    assert not hasattr(Model, "sanitize")


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_cached_decode_equals_full_forward(name):
    model = zoo_model(name)
    x = ids(B=2, L=10)
    full = model(x)
    cache = make_prompt_cache(model)
    steps = [model(x[:, :6], cache=cache)]
    for t in range(6, 10):
        steps.append(model(x[:, t : t + 1], cache=cache))
    assert max_diff(mx.concatenate(steps, axis=1), full) <= PARITY


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_batch_rows_are_independent(name):
    model = zoo_model(name)
    x = ids(B=2, L=7)
    both = model(x)
    assert max_diff(both[1:], model(x[1:])) <= 1e-4
    assert both.shape == (2, 7, BASE["vocab_size"])


@pytest.mark.parametrize("dtype", [mx.float32, mx.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_runs_on_cpu_in_float32_and_bfloat16(name, dtype):
    model = zoo_model(name)
    model.set_dtype(dtype)
    with mx.stream(mx.cpu):
        cache = make_prompt_cache(model)
        out = model(ids(B=2, L=5), cache=cache)
        out = mx.concatenate([out, model(ids(B=2, L=1, seed=4), cache=cache)], axis=1)
        mx.eval(out)
    assert out.dtype == dtype
    assert np.isfinite(np.array(out.astype(mx.float32))).all()


def tiny_tokenizer(vocab_size):
    """A real (word-level) Hugging Face tokenizer over tokens t0..tN, wrapped the way mlx-lm wraps one."""
    import tokenizers
    import transformers
    from mlx_lm.tokenizer_utils import TokenizerWrapper

    vocab = {f"t{i}": i for i in range(vocab_size)}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="t0"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="t1", unk_token="t0")
    return TokenizerWrapper(fast)


def test_stream_generate_runs():
    from mlx_lm.generate import stream_generate

    model = zoo_model("cla_top1")
    tokenizer = tiny_tokenizer(BASE["vocab_size"])
    responses = list(stream_generate(model, tokenizer, "t5 t6 t7", max_tokens=5))
    assert 1 <= len(responses) <= 5 and responses[-1].generation_tokens == len(responses)
    # greedy generation equals argmax of the full forward pass, token by token
    prompt = [5, 6, 7] + [r.token for r in responses[:-1]]
    logits = model(mx.array([prompt]))
    assert [r.token for r in responses] == [int(t) for t in mx.argmax(logits[0, 2:], axis=-1)]
