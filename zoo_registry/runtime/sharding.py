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

from typing import Iterable, List, Optional, Tuple

import mlx.core as mx
import mlx.nn as nn
from mlx.nn.layers.distributed import shard_linear, sum_gradients

from ..errors import ConfigError
from .attention import Attention
from .mlp import MLP
from .moe import MoE, route

MOE_STRATEGIES = ("auto", "tensor", "expert")


# ---------------------------------------------------------------------------------------------
# divisibility checks (run before anything is modified)


def _size(group) -> int:
    return 1 if group is None else group.size()


def _group_size(layer) -> Optional[int]:
    """Quantization group size of a (switch) linear layer, or ``None`` when it is not quantized."""
    return getattr(layer, "group_size", None) if "scales" in layer else None


def _in_dims(layer) -> int:
    """Unpacked input width of a (quantized, switch) linear layer."""
    if "scales" in layer:
        return layer.scales.shape[-1] * layer.group_size
    return layer.weight.shape[-1]


def _need(ok: bool, where: str, what: str, hint: str) -> None:
    if not ok:
        raise ConfigError(f"{where}: {what}", hint=hint)


def _check_input_split(layer, N: int, where: str, name: str) -> None:
    """``layer``'s input columns split across ``N`` ranks must fall on quantization groups."""
    gs = _group_size(layer)
    d = _in_dims(layer)
    unit = N * (gs or 1)
    extra = f" x quantization group size {gs}" if gs else ""
    _need(
        d % unit == 0,
        where,
        f"{name} has {d} input columns, not divisible by {N} ranks{extra} (= {unit})",
        "use a number of ranks that divides it"
        + ("; or quantize with a smaller group size, or shard an unquantized checkpoint" if gs else ""),
    )


def check_attention(attn: Attention, N: int, where: str = "self_attn") -> None:
    """Raise :class:`ConfigError` unless ``attn``'s query and KV heads split evenly over ``N``."""
    _need(
        attn.n_heads % N == 0,
        where,
        f"{attn.n_heads} attention heads cannot be split across {N} ranks",
        "tensor parallelism splits whole heads; use a number of ranks that divides num_attention_heads",
    )
    _need(
        attn.n_kv_heads % N == 0,
        where,
        f"{attn.n_kv_heads} key/value heads cannot be split across {N} ranks",
        "KV heads are split, not replicated; use a number of ranks that divides num_key_value_heads",
    )
    _check_input_split(attn.o_proj, N, where, "o_proj")


def check_mlp(mlp: MLP, N: int, where: str = "mlp") -> None:
    """Raise :class:`ConfigError` unless the MLP's intermediate dimension splits over ``N``."""
    hidden = mlp.gate_proj.weight.shape[0]
    _need(
        hidden % N == 0,
        where,
        f"intermediate size {hidden} cannot be split across {N} ranks",
        "use a number of ranks that divides the intermediate size",
    )
    _check_input_split(mlp.down_proj, N, where, "down_proj")


def _split_unit(glu_or_mlp) -> int:
    """Granularity of an intermediate-dimension split: the down projection's quantization group."""
    return _group_size(glu_or_mlp.down_proj) or 1


def _check_intermediate(block, N: int, where: str, what: str, hint: str) -> None:
    """An MoE-internal intermediate split needs at least one whole unit (group) per rank."""
    hidden = _in_dims(block.down_proj)
    unit = _split_unit(block)
    _need(
        hidden // unit >= N,
        where,
        f"{what} {hidden} cannot be split across {N} ranks"
        + (f" in whole quantization groups of {unit}" if unit > 1 else ""),
        hint,
    )


def _check_moe_tensor(moe: MoE, N: int, where: str) -> None:
    _check_intermediate(
        moe.switch_mlp, N, where, "expert intermediate size",
        "use fewer ranks, or strategy='expert'",
    )


def _check_moe_expert(moe: MoE, N: int, where: str) -> None:
    _need(
        moe.num_experts % N == 0,
        where,
        f"{moe.num_experts} experts cannot be split across {N} ranks",
        "use a number of ranks that divides num_experts, or strategy='tensor'",
    )


def choose_moe_strategy(moe: MoE, N: int, strategy: str = "auto", where: str = "mlp") -> str:
    """Resolve ``strategy`` for ``moe`` over ``N`` ranks, raising :class:`ConfigError` if it cannot split.

    ``"auto"`` picks ``"tensor"`` when the intermediate dimension divides and ``"expert"``
    otherwise. The shared MLP (split by its intermediate dimension under both) is checked too.
    """
    if strategy not in MOE_STRATEGIES:
        raise ConfigError(
            f"{where}: unknown MoE sharding strategy {strategy!r}",
            hint="expected one of " + ", ".join(MOE_STRATEGIES),
        )
    if "shared_mlp" in moe:
        _check_intermediate(moe.shared_mlp, N, where + ".shared_mlp", "intermediate size", "use fewer ranks")
    if strategy == "auto":
        try:
            _check_moe_tensor(moe, N, where)
            return "tensor"
        except ConfigError as tensor_error:
            try:
                _check_moe_expert(moe, N, where)
            except ConfigError as expert_error:
                raise ConfigError(
                    f"{tensor_error.message}; and {expert_error.message.split(': ', 1)[1]}",
                    hint="use a number of ranks that divides num_experts or moe_intermediate_size",
                ) from None
            return "expert"
    (_check_moe_tensor if strategy == "tensor" else _check_moe_expert)(moe, N, where)
    return strategy


# ---------------------------------------------------------------------------------------------
# in-place shards (used inside blocks that all_sum once at their end)


def _bounds(hidden: int, unit: int, group) -> Tuple[int, int]:
    """This rank's ``[lo, hi)`` of an intermediate dimension, cut at multiples of ``unit``.

    Ranks get ``floor`` / ``ceil`` of ``hidden / unit / N`` units: even when it divides (the same
    slices as ``shard_inplace``), within one unit of even when it does not, so a 4-bit
    HunYuan-Large (18304 = 286 groups of 64) still splits over 4 or 8 ranks.
    """
    units, N, r = hidden // unit, group.size(), group.rank()
    return unit * (r * units // N), unit * ((r + 1) * units // N)


def _keep_rows(layer, lo: int, hi: int) -> None:
    """Keep output rows ``[lo, hi)`` of a (quantized, switch) linear layer (a bias: its last axis)."""
    layer.update({
        k: mx.contiguous(v[..., lo:hi] if k == "bias" else v[..., lo:hi, :])
        for k, v in layer.parameters().items()
    })


def _keep_cols(layer, lo: int, hi: int, rank: int) -> None:
    """Keep input columns ``[lo, hi)``; the layer's output becomes a partial sum.

    Packed quantized weights and per-group scales/biases are cut at the same place, scaled by
    their width relative to the input (``lo`` and ``hi`` fall on group boundaries). A bias is
    added once in the sum: ranks other than 0 zero theirs.
    """
    d = _in_dims(layer)
    new = {}
    for k, v in layer.parameters().items():
        if k == "bias":
            new[k] = v if rank == 0 else mx.zeros_like(v)
            continue
        per = v.shape[-1] / d  # packed columns (or groups) per input column
        new[k] = mx.contiguous(v[..., int(lo * per) : int(hi * per)])
    layer.update(new)


def _split_intermediate(block, group) -> None:
    """Split a SwiGLU block (``MLP`` or ``SwitchGLU``) by its intermediate dimension, in place."""
    lo, hi = _bounds(_in_dims(block.down_proj), _split_unit(block), group)
    _keep_rows(block.gate_proj, lo, hi)
    _keep_rows(block.up_proj, lo, hi)
    _keep_cols(block.down_proj, lo, hi, group.rank())


def _take_experts(layer, start: int, stop: int) -> None:
    """Keep experts ``[start, stop)`` of a (quantized) ``SwitchLinear``: every parameter is ``[E, ...]``."""
    layer.update({k: mx.contiguous(v[start:stop]) for k, v in layer.parameters().items()})


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


class TensorParallelMoE(MoE):
    """An :class:`MoE` whose experts and shared MLP hold a slice of their intermediate dimension.

    Everything up to the weighted sum is the parent's code on smaller matrices; the block's
    output is a partial sum that one ``all_sum`` completes. Instances are made by
    :func:`shard_moe` (it swaps the class of an existing module, so parameter paths stay put).
    """

    def __call__(self, x: mx.array) -> mx.array:
        x = sum_gradients(self.sharding_group)(x)
        return mx.distributed.all_sum(super().__call__(x), group=self.sharding_group)


class ExpertParallelMoE(MoE):
    """An :class:`MoE` whose rank holds experts ``[expert_offset, expert_offset + E_local)`` whole.

    Routing runs over all ``num_experts`` (the router is replicated); only the (token, slot)
    pairs whose expert is local are computed; the shared MLP holds a slice of its intermediate
    dimension; one ``all_sum`` adds every rank's part.
    """

    def _local_experts(self, x: mx.array, inds: mx.array, weights: mx.array) -> mx.array:
        B, L, D = x.shape
        k = inds.shape[-1]
        n_local = self.switch_mlp.gate_proj.weight.shape[0]
        flat_x = x.reshape(-1, D)  # [T, D]
        local = inds.reshape(-1).astype(mx.int32) - self.expert_offset  # [T*k] local expert ids
        is_local = (local >= 0) & (local < n_local)
        n = int(is_local.sum().item())  # host sync: how many (token, slot) pairs are ours
        out = mx.zeros((B * L, D), dtype=mx.float32)
        if n == 0:
            return out.reshape(B, L, D)
        order = mx.argsort(mx.where(is_local, local, n_local))[:n]  # [n] our pairs, by expert
        tokens = order // k  # [n] token of each pair
        xs = flat_x[tokens]  # [n, D]
        ids = local[order][:, None].astype(mx.uint32)  # [n, 1]
        ys = self.experts(xs, ids)  # [n, 1, D], on whichever expert path the parent picks
        w = weights.reshape(-1)[order]  # [n] fp32
        out = out.at[tokens].add(ys[:, 0].astype(mx.float32) * w[:, None])
        return out.reshape(B, L, D)

    def __call__(self, x: mx.array) -> mx.array:
        x = sum_gradients(self.sharding_group)(x)
        inds, weights = route(self.gate(x), self.top_k, getattr(self, "renormalize", None))  # [B, L, k] each, global expert ids
        y = self._local_experts(x, inds, weights).astype(x.dtype)  # [B, L, D] partial
        if "shared_mlp" in self:
            y = y + self.shared_mlp(x)  # partial: intermediate split
        return mx.distributed.all_sum(y, group=self.sharding_group)


def shard_moe(moe: MoE, group, *, strategy: str = "auto", where: str = "mlp") -> MoE:
    """Shard an MoE block across ``group`` (``strategy``: ``"auto"``, ``"tensor"`` or ``"expert"``).

    Returns the same module, re-classed as :class:`TensorParallelMoE` or
    :class:`ExpertParallelMoE`; its ``sharding_strategy`` attribute records the choice.
    """
    N = _size(group)
    strategy = choose_moe_strategy(moe, N, strategy, where)
    if N == 1:
        return moe
    if "shared_mlp" in moe:
        _split_intermediate(moe.shared_mlp, group)
    glu = moe.switch_mlp
    if strategy == "tensor":
        _split_intermediate(glu, group)
        moe.__class__ = TensorParallelMoE
    else:
        per_rank = moe.num_experts // N
        start = group.rank() * per_rank
        for layer in (glu.gate_proj, glu.up_proj, glu.down_proj):
            _take_experts(layer, start, start + per_rank)
        moe.expert_offset = start
        moe.__class__ = ExpertParallelMoE
    moe.sharding_group = group
    moe.sharding_strategy = strategy
    return moe


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
