"""Grouped-query attention with configurable QK-norm and cross-layer K/V sharing.

Three ideas HunYuan-Large (Sun et al., arXiv:2411.02265) combines, kept general here:

- **GQA** (Ainslie et al., arXiv:2305.13245): ``n_kv_heads`` key/value heads, each shared by
  ``n_heads / n_kv_heads`` query heads; ``mx.fast.scaled_dot_product_attention`` broadcasts them
  natively.
- **QK-norm** (Henry et al., arXiv:2010.04245): an optional RMSNorm on queries and keys that bounds
  the attention logits. Models differ in where and over what it normalises, so both are parameters:

  - HunYuan (the default): per head (RMSNorm over ``head_dim``), **after** RoPE;
  - Qwen3, Gemma 3: per head, **before** RoPE;
  - OLMo 2 (arXiv:2501.00656): over the whole projection (``n_heads * head_dim`` for queries,
    ``n_kv_heads * head_dim`` for keys), **before** RoPE.

  ``"projection"`` normalises a whole ``q_proj`` / ``k_proj`` output before it is split into heads.
  The norms' attribute names are the checkpoint's (``query_layernorm`` / ``key_layernorm`` by
  default, HunYuan's; ``q_norm`` / ``k_norm`` for Qwen3 and OLMo 2), so no rename rule is needed.
- **Cross-Layer Attention (CLA)** (Brandon et al., arXiv:2405.12981): a layer built with
  ``kv_proj=False`` has no ``k_proj`` / ``v_proj``; it attends over the K/V of the last layer that
  has them, handed over as ``kv_states``. Each layer keeps its *own* key norm. With the norm after
  RoPE the owner stores the weight-free ``k / rms(k)`` and every layer folds its key-norm weight into
  its query (``q · (k̂ ⊙ w) = (q ⊙ w) · k̂``; a whole-projection norm has the same rms before and
  after the rotation, which keeps each head's length), so a group's K/V is computed, rotated,
  normalised and cached once. With a share factor of 2 this halves the K/V projection weights and
  the KV cache (see :mod:`.cache` for how the consumers' caches stay in step at zero bytes). With the
  norm *before* RoPE the weight does not commute with the rotation, so each consumer normalises,
  rotates and caches the owner's raw K/V projections itself: exact, with one full cache per layer
  (as mlx-lm's models keep), only the projections shared. Layers of one group must agree on
  ``qk_norm``, its placement and scope (else ``ValueError``).

Masks and caches follow mlx-lm: ``create_attention_mask`` / ``scaled_dot_product_attention`` from
``mlx_lm.models.base``, so every mlx-lm cache (``KVCache``, ``RotatingKVCache``, quantized and
batched caches) works unchanged.

On the CPU, zoo's kernels (:mod:`zoo_registry.kernels.step`) compute each projection's split into
heads with its RoPE and per-head QK-norm as one graph node (a whole-projection norm is one more
node, zoo's RMSNorm, before it), and the attention itself (no mask or a causal one, K/V not
quantized, short queries) as another, already in ``o_proj``'s layout; MLX's own composition of the
same ops has ~100 nodes per layer, each a CPU dispatch. Elsewhere, and for anything the kernels do
not take, the MLX ops below run.
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

QK_NORM_PLACEMENTS = ("after_rope", "before_rope")
QK_NORM_SCOPES = ("head", "projection")
_RESERVED = ("q_proj", "k_proj", "v_proj", "o_proj", "rope")


def _choice(value: str, allowed: tuple, what: str) -> str:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def _norm_names(names) -> Tuple[str, str]:
    ok = isinstance(names, (tuple, list)) and len(names) == 2 and all(isinstance(n, str) for n in names)
    if not ok or not all(n.isidentifier() for n in names) or names[0] == names[1] or set(names) & set(_RESERVED):
        raise ValueError(
            f"qk_norm_names must be two distinct attribute names for the query and key norms "
            f"(e.g. ('q_norm', 'k_norm')), not one of {', '.join(_RESERVED)}; got {names!r}"
        )
    return names[0], names[1]


class Attention(nn.Module):
    """Multi-head attention with grouped K/V heads, RoPE, optional QK-norm and optional CLA.

    Args:
        hidden_size: model width ``D``.
        n_heads, n_kv_heads, head_dim: query heads, key/value heads (``n_heads % n_kv_heads == 0``)
            and the per-head width (which need not equal ``D / n_heads``).
        rope: a module ``rope(x[B, h, L, hd], offset) -> same shape``.
        kv_proj: whether this layer projects its own K/V; ``False`` makes it a CLA consumer.
        qk_norm: RMSNorm the queries and keys (by default HunYuan's: per head, after RoPE, in
            ``query_layernorm`` / ``key_layernorm``).
        norm_eps: epsilon of those norms.
        bias: bias on the q/k/v projections (and on ``o_proj`` unless ``o_bias`` says otherwise).
        o_bias: bias on ``o_proj``; ``None`` follows ``bias``. Qwen2 has q/k/v biases but none on
            ``o_proj`` (``bias=True, o_bias=False``); Llama's ``attention_bias`` covers all four.
        qk_norm_placement: ``"after_rope"`` (HunYuan) or ``"before_rope"`` (Qwen3, Gemma 3, OLMo 2).
        qk_norm_scope: ``"head"`` (RMSNorm over ``head_dim``: HunYuan, Qwen3) or ``"projection"``
            (over the whole ``n_heads * head_dim`` query / ``n_kv_heads * head_dim`` key projection,
            before the head split: OLMo 2).
        qk_norm_names: the attribute names of the query and key norms, as the checkpoint spells
            them (``("q_norm", "k_norm")`` for Qwen3 / OLMo 2).

    The three ``qk_norm_*`` arguments only matter with ``qk_norm=True``.

    ``__call__(x, mask, cache, kv_states)`` returns ``(out[B, L, D], kv_states)``. An owner returns
    a :class:`~.cache.SharedKV` (iterates as its raw K/V projections, carries the rotated,
    normalised and cached K/V); a consumer returns the ``kv_states`` it was given. A consumer given
    plain raw ``(k, v)`` projections instead rotates, normalises and caches them itself.
    A model whose layers all project their own K/V sets :attr:`shares_kv` to ``False``: an owner
    then returns its raw ``(k, v)`` projections and skips building the hand-over (two graph slices
    and ~5 µs of Python per layer per token).
    """

    shares_kv = True  # whether a later layer may attend over this layer's K/V (CLA)

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
        qk_norm_placement: str = "after_rope",
        qk_norm_scope: str = "head",
        qk_norm_names: Tuple[str, str] = ("query_layernorm", "key_layernorm"),
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
        self.qk_norm_placement = _choice(qk_norm_placement, QK_NORM_PLACEMENTS, "qk_norm_placement")
        self.qk_norm_scope = _choice(qk_norm_scope, QK_NORM_SCOPES, "qk_norm_scope")
        self._q_norm_name, self._k_norm_name = _norm_names(qk_norm_names)
        if qk_norm:
            whole = self.qk_norm_scope == "projection"
            q_dim, k_dim = (n_heads * head_dim, n_kv_heads * head_dim) if whole else (head_dim, head_dim)
            setattr(self, self._q_norm_name, nn.RMSNorm(q_dim, eps=norm_eps))
            setattr(self, self._k_norm_name, nn.RMSNorm(k_dim, eps=norm_eps))
        self.rope = rope

    # --- QK-norm ------------------------------------------------------------------------------

    @property
    def qk_norm_mode(self) -> Optional[Tuple[str, str]]:
        """``(placement, scope)`` with QK-norm, ``None`` without: what the layers of a CLA group share."""
        return (self.qk_norm_placement, self.qk_norm_scope) if self.use_qk_norm else None

    @property
    def _folds_key_norm(self) -> bool:
        """Keys are cached weight-free and each layer's key-norm weight is folded into its queries."""
        return self.use_qk_norm and self.qk_norm_placement == "after_rope"

    def _norms(self) -> Tuple[nn.RMSNorm, nn.RMSNorm]:
        return self[self._q_norm_name], self[self._k_norm_name]

    def _whole(self, x: mx.array, norm: nn.RMSNorm, weight: Optional[mx.array]) -> mx.array:
        """A whole projection ``x [B, L, H * hd]`` RMS-normalised over its last axis (one node on the CPU)."""
        if x.shape[-1] != norm.weight.shape[0]:
            raise ValueError(
                f"a whole-projection QK-norm has {norm.weight.shape[0]} weights for a {x.shape[-1]}-wide "
                "projection (it normalises all heads together, so it cannot be split across ranks)"
            )
        return step.rms_norm(x, weight, norm.eps)

    def _keys_values(self, kv_states: KVStates, B: int, L: int, offset):
        """Raw ``(k, v)`` projections → post-RoPE keys (weight-free ``k / rms(k)`` when the key-norm
        weight is folded into the queries), values."""
        keys, values = kv_states
        values = step.heads(values, self.n_kv_heads)  # [B, nkv, L, hd]
        rope = self["rope"]  # entries by key: nn.Module's __getattr__ is a slow path taken per token
        if not self.use_qk_norm:
            return step.heads(keys, self.n_kv_heads, rope, offset), values
        kn = self[self._k_norm_name]
        before = self.qk_norm_placement == "before_rope"
        if self.qk_norm_scope == "projection":
            keys = self._whole(keys, kn, kn["weight"] if before else None)
            return step.heads(keys, self.n_kv_heads, rope, offset), values
        weight = kn["weight"] if before else None
        keys = step.heads(keys, self.n_kv_heads, rope, offset, norm=True, norm_weight=weight, eps=kn.eps,
                          norm_first=before)  # [B, nkv, L, hd]
        return keys, values

    def _queries(self, queries: mx.array, offset) -> mx.array:
        """``q_proj`` output → post-RoPE queries ``[B, nh, L, hd]``, QK-normalised; after RoPE, times
        this layer's key-norm weight too (folded: the cached keys are weight-free)."""
        rope = self["rope"]
        if not self.use_qk_norm:
            return step.heads(queries, self.n_heads, rope, offset)
        qn, kn = self._norms()
        if self.qk_norm_placement == "before_rope":
            if self.qk_norm_scope == "projection":
                return step.heads(self._whole(queries, qn, qn["weight"]), self.n_heads, rope, offset)
            return step.heads(queries, self.n_heads, rope, offset, norm=True, norm_weight=qn["weight"],
                              eps=qn.eps, norm_first=True)
        if self.qk_norm_scope == "head":
            weight = qn["weight"] * kn["weight"]
            return step.heads(queries, self.n_heads, rope, offset, norm=True, norm_weight=weight, eps=qn.eps)
        # whole projection after RoPE: the rotation keeps the rms, so normalise first, weight last;
        # query head h meets KV head h // (n_heads / n_kv_heads), whose key weights fold into it
        hd, nkv = self.head_dim, kn.weight.shape[0] // self.head_dim
        k_weight = mx.repeat(kn.weight.reshape(nkv, hd), self.n_heads // nkv, axis=0)  # [nh, hd]
        weight = (qn.weight.reshape(-1, hd) * k_weight)[:, None, :]  # [nh, 1, hd]
        return step.heads(self._whole(queries, qn, None), self.n_heads, self.rope, offset) * weight

    # --- forward ------------------------------------------------------------------------------

    def __call__(
        self,
        x: mx.array,
        mask: Optional[Any] = None,
        cache: Optional[Any] = None,
        kv_states: Optional[KVStates] = None,
    ) -> Tuple[mx.array, KVStates]:
        B, L, D = x.shape
        queries = self["q_proj"](x)  # entries by key: nn.Module's __getattr__ is a slow path taken per token
        if self.has_kv_proj:
            kv_states = (self["k_proj"](x), self["v_proj"](x))
        elif kv_states is None:
            raise ValueError("this attention layer shares K/V (CLA) and needs kv_states from an earlier layer")

        shared = isinstance(kv_states, SharedKV) and not self.has_kv_proj
        if shared:
            owner = getattr(kv_states, "qk_norm_mode", ("after_rope", "head") if kv_states.normalized else None)
            if owner != self.qk_norm_mode:
                raise ValueError(
                    "layers sharing K/V (CLA) must agree on qk_norm, its placement and scope: the owner "
                    f"has {owner or 'no QK-norm'}, this layer {self.qk_norm_mode or 'no QK-norm'}"
                )
        if shared and (self._folds_key_norm or not self.use_qk_norm):  # CLA consumer: the owner did the work
            offset, keys, values, kv_cache = kv_states.offset, kv_states.keys, kv_states.values, kv_states.cache
            if cache is not None and cache is not kv_cache:
                advance_shadow(cache, kv_states)
        else:  # an owner, or a consumer normalising the owner's raw K/V with its own weights (before RoPE)
            offset = cache.offset if cache is not None else 0
            new_keys, new_values = self._keys_values(kv_states, B, L, offset)
            keys, values, kv_cache = new_keys, new_values, cache
            if cache is not None:
                keys, values = cache.update_and_fetch(new_keys, new_values)
            if self.has_kv_proj and self.shares_kv:
                kv_states = SharedKV(
                    tuple(kv_states), keys, values, cache=cache, offset=offset, normalized=self._folds_key_norm,
                    new_keys=new_keys, new_values=new_values,
                )
                kv_states.qk_norm_mode = self.qk_norm_mode  # what a consumer must match

        queries = self._queries(queries, offset)  # [B, nh, L, hd]
        if step.attention_serves(queries, keys, values, mask):  # one node, already [B, L, nh * hd]
            return self["o_proj"](step.attention(queries, keys, values, self.scale, mask)), kv_states
        out = scaled_dot_product_attention(queries, keys, values, cache=kv_cache, scale=self.scale, mask=mask)
        out = out.transpose(0, 2, 1, 3).reshape(B, L, -1)  # [B, L, nh * hd]
        return self["o_proj"](out), kv_states
