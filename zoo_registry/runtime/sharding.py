"""Tensor- and expert-parallel sharding of the shared runtime components over ``mx.distributed``.

Every function takes a component built by :mod:`.attention`, :mod:`.mlp` or :mod:`.moe` and a
``mx.distributed.Group`` of ``N`` processes, and rewrites the component *in place* so that rank
``r`` keeps its ``1/N`` share of the weights and the forward pass returns the same result on every
rank (one ``all_sum`` per block). Nothing else changes: parameter paths, caches and the model's
forward code stay as they were, which is what lets a model written from these components add
``shard()`` in a few lines (mlx-lm's convention: ``model.shard(group)`` after a lazy load, then
``mx.eval``; only the slices a rank keeps are ever computed).

Layouts (Megatron-style tensor parallelism, as in mlx-lm's ``llama`` / ``qwen3_moe`` ``shard()``):

- **Attention**: ``q_proj``/``k_proj``/``v_proj`` split by output rows (whole heads), ``o_proj``
  by input columns and all-summed (:class:`mlx.nn.layers.distributed.AllToShardedLinear` /
  ``ShardedToAllLinear``, or their quantized twins). Heads are split contiguously, so query head
  ``h`` and its KV head ``h // (n_heads / n_kv_heads)`` land on the same rank. KV heads are split
  too (never replicated), so ``n_kv_heads`` must divide by ``N``. A Cross-Layer-Attention consumer
  (HunYuan-Large, arXiv:2411.02265) has only ``q_proj``/``o_proj``; its query heads are split the
  same way, so on each rank they line up with the K/V shard its owner layer hands it.
- **Dense MLP**: ``gate_proj``/``up_proj`` split by output rows, ``down_proj`` by input columns
  and all-summed: the intermediate dimension is split.
- **MoE**, two strategies (``strategy=``):

  * ``"tensor"`` (the default): every rank keeps every expert and a ``1/N`` slice of each
    expert's intermediate dimension (and of the shared MLP's). The router stays replicated, each
    rank computes its partial sum of ``shared + sum_k w_k expert_k``, one ``all_sum`` finishes it.
  * ``"expert"``: rank ``r`` keeps experts ``[r E/N, (r+1) E/N)`` whole; every rank routes every
    token (the router is replicated), computes only the (token, slot) pairs whose expert it
    holds, and the same single ``all_sum`` adds the pieces. The shared MLP is still split by its
    intermediate dimension. Selecting the local pairs needs their count on the host (one
    synchronisation per MoE layer).

  Why ``"tensor"`` is the default (``benchmarks/moe_sharding.py`` measures it; see
  ``docs/distributed.md``): at batch 1 every rank reads an equal ``1/N`` of each selected expert,
  while under ``"expert"`` the rank that happens to hold the chosen expert does all of the work —
  with HunYuan-Large's top-1 routing a decode step reads a whole expert on one rank whatever
  ``N`` is. ``"auto"`` takes ``"tensor"`` whenever it can split and ``"expert"`` otherwise.

Quantized layers (``QuantizedLinear``, ``QuantizedSwitchLinear``) shard the same way; a split of
an input dimension must then fall on quantization-group boundaries. Attention and the dense MLP
use MLX's sharded layers (``shard_linear``), which need an even split: ``N * group_size`` must
divide the input width. Inside an MoE block (experts and shared MLP), which finishes with its own
``all_sum`` as mlx-lm's MoE blocks do, the intermediate dimension is cut at group boundaries as
evenly as possible — ranks may differ by one group — so a 4-bit HunYuan-Large (18304 = 286 groups
of 64) still splits over 4 or 8 ranks. Every impossible split raises
:class:`zoo_registry.errors.ConfigError` naming the layer, the size and the fix *before* any
weight is touched, so a failed ``shard()`` leaves the model as it was.

Embeddings, norms, the router and the LM head stay replicated (as in mlx-lm).
"""

from __future__ import annotations

from typing import Iterable, List, Tuple

import mlx.nn as nn
from mlx.nn.layers.distributed import shard_linear

from ..errors import ConfigError
from .attention import Attention
from .mlp import MLP
from .moe import MoE
from .sharding_checks import MOE_STRATEGIES, _size, check_attention, check_mlp, choose_moe_strategy  # noqa: F401 - public here
from .sharding_moe import ExpertParallelMoE, TensorParallelMoE, shard_moe  # noqa: F401 - public here


# ---------------------------------------------------------------------------------------------
# components


def shard_attention(attn: Attention, group, *, where: str = "self_attn") -> Attention:
    """Split ``attn``'s heads (query and KV) across ``group``; ``o_proj`` all-sums the result.

    For a CLA consumer (``attn.has_kv_proj`` false) only ``q_proj``/``o_proj`` exist; the K/V it
    receives come from its owner layer's sharded ``k_proj``/``v_proj``, which hold the same KV
    heads on this rank (same contiguous split), so its local query heads line up with them.
    """
    N = _size(group)
    check_attention(attn, N, where)
    if N == 1:
        return attn
    attn.q_proj = shard_linear(attn.q_proj, "all-to-sharded", group=group)
    if attn.has_kv_proj:
        attn.k_proj = shard_linear(attn.k_proj, "all-to-sharded", group=group)
        attn.v_proj = shard_linear(attn.v_proj, "all-to-sharded", group=group)
    attn.o_proj = shard_linear(attn.o_proj, "sharded-to-all", group=group)
    attn.n_heads //= N
    attn.n_kv_heads //= N
    return attn


def shard_mlp(mlp: MLP, group, *, where: str = "mlp") -> MLP:
    """Split a SwiGLU MLP's intermediate dimension across ``group``; ``down_proj`` all-sums."""
    N = _size(group)
    check_mlp(mlp, N, where)
    if N == 1:
        return mlp
    mlp.gate_proj = shard_linear(mlp.gate_proj, "all-to-sharded", group=group)
    mlp.up_proj = shard_linear(mlp.up_proj, "all-to-sharded", group=group)
    mlp.down_proj = shard_linear(mlp.down_proj, "sharded-to-all", group=group)
    return mlp


# ---------------------------------------------------------------------------------------------
# whole decoders


def _blocks(layers: Iterable, prefix: str) -> List[Tuple[str, nn.Module, str]]:
    out = []
    for i, layer in enumerate(layers):
        for name in ("self_attn", "mlp"):
            block = getattr(layer, name, None)
            if block is not None:
                out.append((f"{prefix}.{i}.{name}", block, name))
    return out


def shard_layers(layers, group, *, moe_strategy: str = "auto", prefix: str = "model.layers") -> None:
    """Shard every ``self_attn`` / ``mlp`` block of a list of decoder layers across ``group``.

    Every block is checked first, so an impossible split raises :class:`ConfigError` (naming
    ``prefix.i.block``) with the model untouched. CLA consumers are checked against their owner:
    they must have the same head layout, or their query heads would not line up with the KV shard
    they receive. ``moe_strategy`` applies to every MoE block; ``"auto"`` resolves per layer.
    """
    N = _size(group)
    blocks = _blocks(layers, prefix)
    owner = None
    for where, block, _ in blocks:
        if isinstance(block, Attention):
            check_attention(block, N, where)
            if block.has_kv_proj:
                owner = (where, block.n_heads, block.n_kv_heads, block.head_dim)
            elif owner is not None and owner[1:] != (block.n_heads, block.n_kv_heads, block.head_dim):
                raise ConfigError(
                    f"{where}: shares K/V with {owner[0]} but has a different head layout "
                    f"(heads/kv/head_dim {block.n_heads}/{block.n_kv_heads}/{block.head_dim} vs "
                    f"{owner[1]}/{owner[2]}/{owner[3]})",
                    hint="cross-layer attention needs identical head layouts in the layers that share K/V",
                )
        elif isinstance(block, MoE):
            choose_moe_strategy(block, N, moe_strategy, where)
        elif isinstance(block, MLP):
            check_mlp(block, N, where)
        else:
            raise ConfigError(
                f"{where}: {type(block).__name__} has no sharding rule",
                hint="zoo_registry.runtime.sharding shards Attention, MLP and MoE blocks",
            )
    if N == 1:
        return
    for where, block, _ in blocks:
        if isinstance(block, Attention):
            shard_attention(block, group, where=where)
        elif isinstance(block, MoE):
            shard_moe(block, group, strategy=moe_strategy, where=where)
        else:
            shard_mlp(block, group, where=where)
