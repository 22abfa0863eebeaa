"""zoo-llama's own tests: what a plugin author writes, using the fixtures zoo's pytest plugin ships."""

import pytest

TINY = {
    "model_type": "zoo_llama",
    "vocab_size": 64,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}
LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 16}
CONFIGS = {
    "llama": TINY,
    "llama3-rope-tied": dict(TINY, rope_scaling=LLAMA3_ROPE, tie_word_embeddings=True),
    "qwen2-qkv-bias": dict(TINY, qkv_bias=True, rope_theta=1000000.0),
    "head-dim-64": dict(TINY, head_dim=32, attention_bias=True, mlp_bias=True),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_model(zoo_model_tests, name):
    figures = zoo_model_tests(CONFIGS[name])
    assert figures["provider"] == "zoo-llama"


def meta_layout(tensors, config):
    """Hugging Face names → Meta's consolidated names, q/k rows back to interleaved RoPE pairs."""
    import mlx.core as mx

    out = {}
    for name, x in tensors.items():
        if ".self_attn.q_proj." in name or ".self_attn.k_proj." in name:
            heads = config["num_attention_heads" if ".q_proj." in name else "num_key_value_heads"]
            rows = x.reshape(heads, 2, -1, *x.shape[1:])  # [heads, halves, d/2, (D)]; biases have no D
            x = mx.swapaxes(rows, 1, 2).reshape(x.shape)  # [heads, d/2, pairs, (D)]
        for hf, meta in (("model.embed_tokens", "tok_embeddings"), ("model.norm", "norm"), ("lm_head", "output"),
                         ("model.layers", "layers"), ("self_attn.q_proj", "attention.wq"), ("self_attn.k_proj", "attention.wk"),
                         ("self_attn.v_proj", "attention.wv"), ("self_attn.o_proj", "attention.wo"),
                         ("mlp.gate_proj", "feed_forward.w1"), ("mlp.down_proj", "feed_forward.w2"), ("mlp.up_proj", "feed_forward.w3"),
                         ("input_layernorm", "attention_norm"), ("post_attention_layernorm", "ffn_norm")):
            name = name.replace(hf, meta)
        out[name] = x
    return out


def test_meta_consolidated_layout_loads(zoo_model_tests):
    figures = zoo_model_tests(TINY, layouts=[meta_layout])  # written in Meta's layout, loaded back exactly
    assert "layers.0.attention.wq.weight" in figures["roundtrip_meta_layout"]["names_only_in_file"]


def test_tiny_checkpoint_in_hf_layout_with_rotary_buffers(zoo_tiny_checkpoint):
    """Buffers older transformers exports carry are dropped by the rules; the load is strict."""
    import mlx.core as mx

    from zoo_registry import load_model

    def with_buffers(tensors, config):
        tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = mx.zeros((8,))
        return tensors

    ckpt = zoo_tiny_checkpoint(TINY, layout=with_buffers)
    model, info = load_model(ckpt.path, return_info=True)
    assert info.provider == "zoo-llama"
    assert info.report.ok


def test_typo_in_config_is_an_error(zoo_registry):
    from zoo_registry import ConfigError
    from zoo_registry.configs import validate_config

    with pytest.raises(ConfigError, match=r"\$\.num_key_value_head: unknown key \(did you mean 'num_key_value_heads'\?\)"):
        validate_config(dict(TINY, num_key_value_head=2))
