"""Grouped-query attention with optional QK-norm after RoPE and cross-layer K/V sharing.

Three ideas HunYuan-Large (Sun et al., arXiv:2411.02265) combines, kept general here:

- **GQA** (Ainslie et al., arXiv:2305.13245): ``n_kv_heads`` key/value heads, each shared by
  ``n_heads / n_kv_heads`` query heads; ``mx.fast.scaled_dot_product_attention`` broadcasts them
  natively.
- **QK-norm** (Henry et al., arXiv:2010.04245) **after RoPE**: an optional per-head RMSNorm over
  ``head_dim`` on queries and keys, applied *after* the rotation (the opposite order to Qwen3). It
  bounds the attention logits.
- **Cross-Layer Attention (CLA)** (Brandon et al., arXiv:2405.12981): a layer built with
  ``kv_proj=False`` has no ``k_proj`` /
  ``v_proj``; it attends over the K/V of the last layer that has them, handed over as
  ``kv_states``. Each layer keeps its *own* ``key_layernorm``: the owner stores the weight-free
  ``k / rms(k)`` and every layer folds its key-norm weight into its query
  (``q · (k̂ ⊙ w) = (q ⊙ w) · k̂``), so a group's K/V is computed, rotated, normalised and cached
  once. With a share factor of 2 this halves the K/V projection weights and the KV cache (see
  :mod:`.cache` for how the consumers' caches stay in step at zero bytes).

Masks and caches follow mlx-lm: ``create_attention_mask`` / ``scaled_dot_product_attention`` from
``mlx_lm.models.base``, so every mlx-lm cache (``KVCache``, ``RotatingKVCache``, quantized and
batched caches) works unchanged.

On the CPU, zoo's kernels (:mod:`zoo_registry.kernels.step`) compute each projection's split into
heads with its RoPE and QK-norm as one graph node, and the attention itself (no mask or a causal
one, K/V not quantized, short queries) as another, already in ``o_proj``'s layout; MLX's own
composition of the same ops has ~100 nodes per layer, each a CPU dispatch. Elsewhere, and for
anything the kernels do not take, the MLX ops below run.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.base import scaled_dot_product_attention

from ..kernels import step
from .cache import SharedKV, advance_shadow
from .linear import Linear

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
        bias: bias on the q/k/v projections (and on ``o_proj`` unless ``o_bias`` says otherwise).
        o_bias: bias on ``o_proj``; ``None`` follows ``bias``. Qwen2 has q/k/v biases but none on
            ``o_proj`` (``bias=True, o_bias=False``); Llama's ``attention_bias`` covers all four.

    ``__call__(x, mask, cache, kv_states)`` returns ``(out[B, L, D], kv_states)``. An owner returns
    a :class:`~.cache.SharedKV` (iterates as its raw K/V projections, carries the rotated,
    normalised and cached K/V); a consumer returns the ``kv_states`` it was given. A consumer given
    plain raw ``(k, v)`` projections instead rotates, normalises and caches them itself.
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
        o_bias: Optional[bool] = None,
    ):
        super().__init__()
        if n_heads % n_kv_heads:
            raise ValueError(f"n_heads ({n_heads}) must be a multiple of n_kv_heads ({n_kv_heads})")
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, head_dim
        self.scale = head_dim**-0.5
        self.has_kv_proj = kv_proj
        self.q_proj = Linear(hidden_size, n_heads * head_dim, bias=bias)
        if kv_proj:
            self.k_proj = Linear(hidden_size, n_kv_heads * head_dim, bias=bias)
            self.v_proj = Linear(hidden_size, n_kv_heads * head_dim, bias=bias)
        self.o_proj = Linear(n_heads * head_dim, hidden_size, bias=bias if o_bias is None else o_bias)
        self.use_qk_norm = qk_norm
        if qk_norm:
            self.query_layernorm = nn.RMSNorm(head_dim, eps=norm_eps)
            self.key_layernorm = nn.RMSNorm(head_dim, eps=norm_eps)
        self.rope = rope

    def _keys_values(self, kv_states: KVStates, B: int, L: int, offset):
        """Raw ``(k, v)`` projections → post-RoPE keys (weight-free ``k / rms(k)`` with QK-norm), values."""
        keys, values = kv_states
        keys = step.heads(keys, self.n_kv_heads, self.rope, offset, norm=self.use_qk_norm,
                          eps=self.key_layernorm.eps if self.use_qk_norm else 1e-5)  # [B, nkv, L, hd]
        return keys, step.heads(values, self.n_kv_heads)  # [B, nkv, L, hd]

    def _queries(self, queries: mx.array, offset) -> mx.array:
        """``q_proj`` output → post-RoPE queries ``[B, nh, L, hd]``; with QK-norm normalised after RoPE,
        times this layer's key-norm weight (folded: the cached keys are weight-free)."""
        if not self.use_qk_norm:
            return step.heads(queries, self.n_heads, self.rope, offset)
        weight = self.query_layernorm.weight * self.key_layernorm.weight
        return step.heads(queries, self.n_heads, self.rope, offset, norm=True, norm_weight=weight,
                          eps=self.query_layernorm.eps)

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

        if isinstance(kv_states, SharedKV) and not self.has_kv_proj:  # CLA consumer: the owner did the work
            if kv_states.normalized != self.use_qk_norm:
                raise ValueError("layers sharing K/V (CLA) must agree on qk_norm")
            offset, keys, values, kv_cache = kv_states.offset, kv_states.keys, kv_states.values, kv_states.cache
            if cache is not None and cache is not kv_cache:
                advance_shadow(cache, kv_states)
        else:
            offset = cache.offset if cache is not None else 0
            new_keys, new_values = self._keys_values(kv_states, B, L, offset)
            keys, values, kv_cache = new_keys, new_values, cache
            if cache is not None:
                keys, values = cache.update_and_fetch(new_keys, new_values)
            if self.has_kv_proj:
                kv_states = SharedKV(
                    tuple(kv_states), keys, values, cache=cache, offset=offset, normalized=self.use_qk_norm,
                    new_keys=new_keys, new_values=new_values,
                )

        queries = self._queries(queries, offset)  # [B, nh, L, hd]
        if step.attention_serves(queries, keys, values, mask):  # one node, already [B, L, nh * hd]
            return self.o_proj(step.attention(queries, keys, values, self.scale, mask)), kv_states
        out = scaled_dot_product_attention(queries, keys, values, cache=kv_cache, scale=self.scale, mask=mask)
        out = out.transpose(0, 2, 1, 3).reshape(B, L, -1)  # [B, L, nh * hd]
        return self.o_proj(out), kv_states
