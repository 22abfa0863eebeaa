"""The smallest model zoo's loader accepts: an embedding, one SwiGLU MLP and a tied head."""

import mlx.core as mx
import mlx.nn as nn

from zoo_registry.runtime.mlp import MLP


class Model(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        self.embed_tokens = nn.Embedding(config["vocab_size"], config["hidden_size"])
        self.mlp = MLP(config["hidden_size"], config["intermediate_size"])
        self.layers = []  # no attention: nothing to cache

    def __call__(self, inputs: mx.array, cache=None) -> mx.array:
        h = self.embed_tokens(inputs)
        return self.embed_tokens.as_linear(h + self.mlp(h))
