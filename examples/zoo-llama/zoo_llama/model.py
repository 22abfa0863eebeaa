"""The Llama / Qwen2 decoder, assembled from zoo's shared runtime components.

Pre-norm blocks ``h += attn(input_layernorm(h))``, ``h += mlp(post_attention_layernorm(h))``,
then ``logits = lm_head(norm(h))`` (the embedding matrix when ``tie_word_embeddings``):
grouped-query attention and RoPE (default, linear or llama3) from ``zoo_registry.runtime``,
the SwiGLU MLP, RMSNorm. Parameter names are Hugging Face's (= mlx-lm's ``llama`` and ``qwen2``),
so HF and mlx-lm checkpoints load as they are; other layouts are the rule file's business.
"""

from types import SimpleNamespace

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.base import create_attention_mask

from zoo_registry.runtime.attention import Attention
from zoo_registry.runtime.mlp import MLP
from zoo_registry.runtime.norm import RMSNorm
from zoo_registry.runtime.rope import make_rope
from zoo_registry.runtime.sharding import shard_layers

from .config import normalize


class DecoderLayer(nn.Module):
    def __init__(self, cfg: dict, rope: nn.Module):
        super().__init__()
        D, eps = cfg["hidden_size"], cfg["rms_norm_eps"]
        self.self_attn = Attention(
            D, cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"], rope,
            bias=cfg["attention_bias"] or cfg["qkv_bias"], o_bias=cfg["attention_bias"],
        )
        self.mlp = MLP(D, cfg["intermediate_size"], bias=cfg["mlp_bias"])
        self.input_layernorm = RMSNorm(D, eps=eps)
        self.post_attention_layernorm = RMSNorm(D, eps=eps)

    def __call__(self, x: mx.array, mask=None, cache=None) -> mx.array:
        h = x + self.self_attn(self.input_layernorm(x), mask, cache)[0]  # [0]: no K/V sharing here
        return h + self.mlp(self.post_attention_layernorm(h))


class LlamaModel(nn.Module):
    """The decoder stack: token embedding, the layers, the final norm (HF's ``model.*`` names)."""

    def __init__(self, cfg: dict):
        super().__init__()
        rope = make_rope(cfg["head_dim"], cfg["rope_theta"], cfg["rope_scaling"], cfg.get("max_position_embeddings"))
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = [DecoderLayer(cfg, rope) for _ in range(cfg["num_hidden_layers"])]  # one RoPE, shared
        self.norm = RMSNorm(cfg["hidden_size"], eps=cfg["rms_norm_eps"])

    def __call__(self, inputs: mx.array, cache=None) -> mx.array:
        h = self.embed_tokens(inputs)  # [B, L] -> [B, L, D]
        cache = cache or [None] * len(self.layers)  # mlx-lm's prompt caches: one per layer, or none
        mask = create_attention_mask(h, cache[0])  # mlx-lm's causal mask ("causal", or None for one token)
        for layer, c in zip(self.layers, cache):
            h = layer(h, mask, c)  # each layer appends its K/V to its own cache
        return self.norm(h)


class Model(nn.Module):
    """Causal LM following mlx-lm's model protocol: ``model(ids[B, L], cache) -> logits[B, L, V]``.

    ``layers`` tells mlx-lm how many caches to make; ``shard(group)`` splits the model for
    ``mlx.launch`` (tensor parallelism from :mod:`zoo_registry.runtime.sharding`).
    """

    def __init__(self, config: dict):
        super().__init__()
        cfg = normalize(config)  # idempotent: zoo passes an already normalised config
        self.args = SimpleNamespace(**cfg)  # not a dict: nn.Module would treat a dict as parameters
        self.model_type = cfg["model_type"]
        self.model = LlamaModel(cfg)
        if not cfg["tie_word_embeddings"]:
            self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)

    def __call__(self, inputs: mx.array, cache=None) -> mx.array:
        out = self.model(inputs, cache)
        if "lm_head" in self:
            return self.lm_head(out)
        return self.model.embed_tokens.as_linear(out)  # tied head: the embedding matrix, transposed

    @property
    def layers(self):
        return self.model.layers

    def shard(self, group=None):
        """Split every layer's attention heads and MLP across ``group`` (default: the launched
        group), in place; embedding, norms and head stay whole. Raises ``ConfigError`` when a
        size does not divide by the group size, before any weight moves."""
        group = group or mx.distributed.init()
        shard_layers(self.layers, group)
