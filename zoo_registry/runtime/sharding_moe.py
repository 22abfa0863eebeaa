"""MoE blocks sharded over ``mx.distributed``: tensor-parallel (every rank a slice of every expert)
or expert-parallel (every rank a contiguous range of whole experts); see :mod:`.sharding` for the
layouts and why ``"tensor"`` is the default.

The shared MLP and the experts are split in place at quantization-group boundaries, as evenly as
possible (ranks may differ by one group), because each block finishes with its own ``all_sum``.
"""

from __future__ import annotations

from typing import Tuple

import mlx.core as mx
from mlx.nn.layers.distributed import sum_gradients

from .moe import MoE, route
from .sharding_checks import _in_dims, _size, _split_unit, choose_moe_strategy


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
