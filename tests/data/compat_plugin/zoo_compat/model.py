"""compat_decoder: embeddings, pre-norm blocks of zoo's Attention and MLP, final norm, head."""

from types import SimpleNamespace

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.base import create_attention_mask

from zoo_registry.runtime.attention import Attention
from zoo_registry.runtime.mlp import MLP
from zoo_registry.runtime.rope import make_rope

from .config import normalize


class Block(nn.Module):
    def __init__(self, c: dict, rope):
        super().__init__()
        width = c["hidden_size"]
        self.self_attn = Attention(width, c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"], rope)
        self.mlp = MLP(width, c["intermediate_size"])
        self.input_layernorm = nn.RMSNorm(width, eps=c["rms_norm_eps"])
        self.post_attention_layernorm = nn.RMSNorm(width, eps=c["rms_norm_eps"])

    def __call__(self, x, mask=None, cache=None):
        x = x + self.self_attn(self.input_layernorm(x), mask, cache)[0]
        return x + self.mlp(self.post_attention_layernorm(x))


class Decoder(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        rope = make_rope(c["head_dim"], c["rope_theta"], None, c.get("max_position_embeddings"))
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = [Block(c, rope) for _ in range(c["num_hidden_layers"])]
        self.norm = nn.RMSNorm(c["hidden_size"], eps=c["rms_norm_eps"])


class Model(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        c = normalize(config)
        self.args = SimpleNamespace(**c)
        self.model_type = c["model_type"]
        self.model = Decoder(c)
        self.tied = c["tie_word_embeddings"]
        if not self.tied:
            self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)

    def __call__(self, inputs: mx.array, cache=None) -> mx.array:
        h = self.model.embed_tokens(inputs)
        caches = cache or [None] * len(self.layers)
        mask = create_attention_mask(h, caches[0])
        for block, c in zip(self.layers, caches):
            h = block(h, mask, c)
        h = self.model.norm(h)
        return self.model.embed_tokens.as_linear(h) if self.tied else self.lm_head(h)

    @property
    def layers(self):
        return self.model.layers
