"""Grouped-query attention with optional QK-norm after RoPE and cross-layer K/V sharing.

Three ideas, all from HunYuan-Large (Sun et al., arXiv:2411.02265), kept general here:

- **GQA**: ``n_kv_heads`` key/value heads, each shared by ``n_heads / n_kv_heads`` query heads;
  ``mx.fast.scaled_dot_product_attention`` broadcasts them natively.
- **QK-norm after RoPE**: an optional per-head RMSNorm over ``head_dim`` on queries and keys,
  applied *after* the rotation (the opposite order to Qwen3). It bounds the attention logits.
- **Cross-Layer Attention (CLA)**: a layer built with ``kv_proj=False`` has no ``k_proj`` /
  ``v_proj``; it reuses the raw (pre-RoPE) key/value projections of the last layer that has them,
  passed in as ``kv_states``. Each layer still rotates the keys and applies its *own*
  ``key_layernorm``, and keeps its own cache. With a share factor of 2 this halves the K/V
  projection weights (and, in the paper's accounting, the KV cache).

Masks and caches follow mlx-lm: ``create_attention_mask`` / ``scaled_dot_product_attention`` from
``mlx_lm.models.base``, so every mlx-lm cache (``KVCache``, ``RotatingKVCache``, quantized caches)
works unchanged.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.base import scaled_dot_product_attention

KVStates = Tuple[mx.array, mx.array]  # raw k_proj / v_proj outputs, each [B, L, n_kv_heads * head_dim]


class Attention(nn.Module):
    """Multi-head attention with grouped K/V heads, RoPE, optional QK-norm and optional CLA.

    Args:
        hidden_size: model width ``D``.
        n_heads, n_kv_heads, head_dim: query heads, key/value heads (``n_heads % n_kv_heads == 0``)
            and the per-head width (which need not equal ``D / n_heads``).
        rope: a module ``rope(x[B, h, L, hd], offset) -> same shape``.
        kv_proj: whether this layer projects its own K/V; ``False`` makes it a CLA consumer.
        qk_norm: apply ``query_layernorm`` / ``key_layernorm`` (RMSNorm over ``head_dim``) after RoPE.
        norm_eps: epsilon of those norms.
        bias: bias on all four projections.

    ``__call__(x, mask, cache, kv_states)`` returns ``(out[B, L, D], kv_states)`` where
    ``kv_states`` are the raw K/V projections this layer used, for the next CLA consumer.
    """

    def __init__(
        self,
        hidden_size: int,
        n_heads: int,
        n_kv_heads: int,
        head_dim: int,
        rope: nn.Module,
        *,
        kv_proj: bool = True,
        qk_norm: bool = False,
        norm_eps: float = 1e-5,
        bias: bool = False,
    ):
        super().__init__()
        if n_heads % n_kv_heads:
            raise ValueError(f"n_heads ({n_heads}) must be a multiple of n_kv_heads ({n_kv_heads})")
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, head_dim
        self.scale = head_dim**-0.5
        self.has_kv_proj = kv_proj
        self.q_proj = nn.Linear(hidden_size, n_heads * head_dim, bias=bias)
        if kv_proj:
            self.k_proj = nn.Linear(hidden_size, n_kv_heads * head_dim, bias=bias)
            self.v_proj = nn.Linear(hidden_size, n_kv_heads * head_dim, bias=bias)
        self.o_proj = nn.Linear(n_heads * head_dim, hidden_size, bias=bias)
        self.use_qk_norm = qk_norm
        if qk_norm:
            self.query_layernorm = nn.RMSNorm(head_dim, eps=norm_eps)
            self.key_layernorm = nn.RMSNorm(head_dim, eps=norm_eps)
        self.rope = rope

    def __call__(
        self,
        x: mx.array,
        mask: Optional[Any] = None,
        cache: Optional[Any] = None,
        kv_states: Optional[KVStates] = None,
    ) -> Tuple[mx.array, KVStates]:
        B, L, D = x.shape
        queries = self.q_proj(x)
        if self.has_kv_proj:
            kv_states = (self.k_proj(x), self.v_proj(x))
        elif kv_states is None:
            raise ValueError("this attention layer shares K/V (CLA) and needs kv_states from an earlier layer")
        keys, values = kv_states

        queries = queries.reshape(B, L, self.n_heads, -1).transpose(0, 2, 1, 3)  # [B, nh, L, hd]
        keys = keys.reshape(B, L, self.n_kv_heads, -1).transpose(0, 2, 1, 3)  # [B, nkv, L, hd]
        values = values.reshape(B, L, self.n_kv_heads, -1).transpose(0, 2, 1, 3)  # [B, nkv, L, hd]

        offset = cache.offset if cache is not None else 0
        queries = self.rope(queries, offset=offset)
        keys = self.rope(keys, offset=offset)
        if self.use_qk_norm:  # after RoPE, per head
            queries = self.query_layernorm(queries)
            keys = self.key_layernorm(keys)

        if cache is not None:
            keys, values = cache.update_and_fetch(keys, values)

        out = scaled_dot_product_attention(queries, keys, values, cache=cache, scale=self.scale, mask=mask)
        out = out.transpose(0, 2, 1, 3).reshape(B, L, -1)  # [B, L, nh * hd]
        return self.o_proj(out), kv_states
