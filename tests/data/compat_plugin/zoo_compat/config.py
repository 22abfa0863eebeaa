"""Cross-field checks and defaults for compat_decoder configs; no MLX import (zoo validate runs it)."""

from zoo_registry import ConfigError


def normalize(config: dict) -> dict:
    cfg = dict(config)
    cfg.setdefault("rms_norm_eps", 1e-5)
    cfg.setdefault("rope_theta", 10000.0)
    cfg.setdefault("tie_word_embeddings", True)
    heads = cfg["num_attention_heads"]
    kv = cfg.setdefault("num_key_value_heads", heads)
    if heads % kv:
        raise ConfigError(f"$.num_attention_heads: {heads} is not divisible by num_key_value_heads {kv}",
                          hint="each key/value head serves a whole number of query heads")
    if cfg["hidden_size"] % heads:
        raise ConfigError(f"$.hidden_size: {cfg['hidden_size']} is not divisible by num_attention_heads {heads}")
    cfg["head_dim"] = cfg["hidden_size"] // heads
    return cfg
