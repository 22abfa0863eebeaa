"""The SwiGLU feed-forward block used by Llama-style decoders (and as MoE experts / shared MLP).

``down_proj(silu(gate_proj(x)) * up_proj(x))`` (Shazeer, "GLU Variants Improve Transformer").
HunYuan-Large (arXiv:2411.02265) uses it for its dense layers, its shared expert and each routed
expert; parameter names follow Hugging Face (``gate_proj``, ``up_proj``, ``down_proj``). The projections are
:class:`.linear.Linear` (``mlx.nn.Linear`` that runs half-precision products in float32 on the CPU
when that is faster). On the CPU with zoo's kernels built, the whole block is one kernel call
(:func:`.fused.mlp`: gate and up in one pass, ``silu * up``, down) when its weights are quantized or
half precision.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.activations import swiglu

from . import fused
from .linear import Linear, QuantizedLinear

fused.accept(Linear, QuantizedLinear)


class MLP(nn.Module):
    """SwiGLU MLP ``D -> hidden_dims -> D`` (no bias by default)."""

    def __init__(self, dims: int, hidden_dims: int, bias: bool = False):
        super().__init__()
        self.gate_proj = Linear(dims, hidden_dims, bias=bias)
        self.up_proj = Linear(dims, hidden_dims, bias=bias)
        self.down_proj = Linear(hidden_dims, dims, bias=bias)

    def __call__(self, x: mx.array) -> mx.array:
        y = fused.mlp(self, x)
        if y is not None:
            return y
        return self.down_proj(swiglu(self.gate_proj(x), self.up_proj(x)))
