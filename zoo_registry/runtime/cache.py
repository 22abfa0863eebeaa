"""KV caches for cross-layer attention (CLA): one stored K/V per group of layers, in mlx-lm's caches.

Cross-Layer Attention (HunYuan-Large, Sun et al., arXiv:2411.02265, Sec. 2.2) lets
``cla_share_factor`` adjacent layers use the K/V projections of the first of them. mlx-lm's
``hunyuan`` (like Tencent's code) still keeps one full cache per layer, so the memory the paper
counts on is never saved. Here a group's K/V is stored **once**, in the owner layer's cache:

- **V** is the same for every layer of the group (one ``v_proj``), so it is shared as is.
- **K** differs per layer only by that layer's ``key_layernorm`` weight ``w``, applied after RoPE:
  ``k_l = k̂ ⊙ w_l`` with ``k̂ = k / rms(k)``. The owner stores the weight-free ``k̂`` and every
  layer folds its ``w_l`` into its query instead: ``q · (k̂ ⊙ w_l) = (q ⊙ w_l) · k̂``. Exact (up to
  float rounding), and no per-step work over the cache.

How it fits mlx-lm's prompt cache without a cache class of its own: the model keeps mlx-lm's
default *one cache per layer* (``make_prompt_cache`` builds them: ``KVCache``, ``RotatingKVCache``
for ``max_kv_size``, later ``QuantizedKVCache`` for ``kv_bits``, ``BatchKVCache`` in batch
generation). A consumer layer's own cache is a **shadow**: it receives zero-width K/V
(``[B, 0, L, head_dim]``) on every call, so it holds zero bytes yet its bookkeeping — offset,
batch padding, rotation, quantization, trimming, ``save_prompt_cache`` / ``load_prompt_cache``,
``merge`` / ``filter`` / ``extract`` in ``BatchGenerator`` — advances exactly like its owner's,
through mlx-lm's own code. The K/V a consumer attends over come from its owner in the same
forward pass (:class:`SharedKV`).
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

import mlx.core as mx


class SharedKV(tuple):
    """What an owner layer hands the consumers of its CLA group in one forward pass.

    Iterates as the owner's raw ``(k_proj(x), v_proj(x))`` (``[B, L, n_kv_heads * head_dim]``
    each), so code written for raw K/V states keeps working; the attributes carry what the
    consumers actually use:

    - ``keys``, ``values``: what the owner attends over — post-RoPE keys (weight-free ``k̂`` when
      ``normalized``) and values, for the whole cache when there is one (``[B, n_kv, S, hd]``, or
      mlx-lm's quantized triples);
    - ``cache``: the owner's cache (``None`` without one), which tells the attention kernel how
      the K/V are stored (quantized or not);
    - ``offset``: the position of the first new token (the owner's cache offset before it was
      updated), for the consumers' query RoPE;
    - ``normalized``: whether ``keys`` are ``k / rms(k)`` (QK-norm) and each consumer must fold its
      ``key_layernorm`` weight into its query;
    - ``shadow``: zero-head slices ``[B, 0, L, hd]`` of this step's K/V, for :func:`advance_shadow`.
    """

    def __new__(cls, raw, keys, values, *, cache: Optional[Any], offset, normalized: bool, new_keys, new_values):
        self = super().__new__(cls, raw)
        self.keys, self.values, self.cache, self.offset, self.normalized = keys, values, cache, offset, normalized
        self.shadow = (new_keys[:, :0], new_values[:, :0])
        return self


def advance_shadow(cache: Any, shared: SharedKV) -> None:
    """Step a consumer layer's own (shadow) cache by this step's ``L`` positions, storing nothing.

    The shadow receives zero-head K/V ``[B, 0, L, hd]``: no memory, yet every counter of mlx-lm's
    cache classes (offset, padding, rotation index, quantization state) moves with the owner's.
    """
    cache.update_and_fetch(*shared.shadow)


def cache_nbytes(caches: Iterable[Any]) -> int:
    """Bytes held by a prompt cache (a list of mlx-lm caches), each distinct cache counted once."""
    seen, total = set(), 0
    for c in caches:
        if c is not None and id(c) not in seen:
            seen.add(id(c))
            total += c.nbytes
    return total
