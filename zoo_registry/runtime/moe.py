"""Mixture-of-Experts feed-forward block: fp32 softmax router, top-k routed SwiGLU experts, shared MLP.

HunYuan-Large (Sun et al., arXiv:2411.02265) pairs one always-on *shared* expert with routed
experts: ``y = shared_mlp(x) + sum_k w_k * expert_k(x)``. The shared MLP learns what every token
needs, the routed experts specialise. Routing, as in the reference code:

- the router ``gate.wg`` is a bias-free ``Linear(D, E)`` evaluated in float32 (near-tied experts
  must not flip with the activation dtype);
- softmax over *all* experts, then the top-k;
- the k weights are renormalised to sum to 1 when the model's reference code does so
  (``renormalize``; by default iff ``top_k > 1``). Tencent's code picks its gate from the config's
  form: ``moe_topk: 1`` (an integer) takes top1gating, which keeps the raw probability
  (HunYuan-Large); a list such as A13B's ``[8, 8, ...]``, even ``[1, 1, ...]``, or an integer > 1
  takes topkgating, which divides by the sum; transformers' ``hunyuan_v1_moe`` always divides;
- no capacity limit, no token is ever dropped (inference semantics).

Routed experts live in mlx-lm's ``SwitchGLU`` (``switch_mlp.{gate,up,down}_proj`` stacked
``[E, out, in]``) so ``mlx.nn.quantize`` swaps in ``QuantizedSwitchLinear`` as for any mlx-lm MoE.

How the experts run on the CPU (:meth:`MoE.experts`; on other devices always ``SwitchGLU``):

- MLX's CPU ``gather_mm`` calls sgemm once per (token, expert) row (M=1) and only supports
  float32. That is the right shape for decode (a handful of rows: no host sync, no sorting), so
  float32 experts use it below :data:`GROUPED_MIN_ROWS_PER_EXPERT` (token, slot) pairs per expert
  on average, and quantized experts (``gather_qmm``) always.
- Beyond that, and for bfloat16/float16 at any length, :func:`grouped_switch_glu` sorts the
  (token, slot) pairs by expert and runs one dense GEMM per expert on its contiguous slice: one
  host synchronisation per MoE layer (the expert counts) buys BLAS-sized GEMMs instead of
  ``T * k`` matrix-vector products.
- bfloat16/float16 experts are cast to float32 per expert right before their GEMMs when
  :func:`.linear.fp32_compute` says it pays (an optimised BLAS serves MLX, see :mod:`.blas`, and
  the GEMM has rows enough or the expert is small): MLX's own half-precision CPU matmul is several
  times slower than sgemm there. Otherwise the native half-precision matmul is kept.
- When zoo's CPU kernels are built (:mod:`zoo_registry.kernels`), quantized and half-precision
  experts run through ``SwitchGLU`` with :class:`KernelQuantizedSwitchLinear` /
  :class:`KernelSwitchLinear`: one kernel call per projection computes the selected experts only
  (rows grouped by expert inside the kernel), no per-token loop, no host synchronisation.

Before any of that, :meth:`MoE.__call__` offers the whole block (routing, experts, combine, shared
MLP) to the fused kernel (:meth:`MoE.fused`: ``kernels.fused_ffn`` on the arguments
:func:`.fused.moe_args` reads, read once per block: :func:`.fused.remembered`): one kernel call on the CPU when zoo's kernels
are built and every projection is quantized (MLX affine 4/8-bit) or half precision; the routing parameters
(``top_k``, ``renormalize``) are the block's, so each architecture keeps its gate semantics.
"""

from __future__ import annotations

from typing import Optional, Tuple

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.switch_layers import QuantizedSwitchLinear, SwitchGLU, SwitchLinear

from .. import kernels

from . import fused
from .linear import fp32_compute
from .mlp import MLP


class Router(nn.Module):
    """The token router: ``wg`` is ``Linear(D, E)`` without bias, always computed in float32.

    A quantized ``wg`` (if a user quantized it anyway) still works; its logits are upcast.
    ``keep_float``: zoo's quantization leaves the router in full precision (near-tie routing
    flips otherwise; see :mod:`zoo_registry.loading.quantize`).
    """

    keep_float = True

    def __init__(self, dims: int, num_experts: int):
        super().__init__()
        self.wg = nn.Linear(dims, num_experts, bias=False)

    def __call__(self, x: mx.array) -> mx.array:
        if isinstance(self.wg, nn.Linear) and "weight" in self.wg:
            return x.astype(mx.float32) @ self.wg.weight.astype(mx.float32).T  # [..., E] fp32 logits
        return self.wg(x).astype(mx.float32)


def route(logits: mx.array, top_k: int, renormalize: Optional[bool] = None) -> Tuple[mx.array, mx.array]:
    """Pick experts from router logits ``[..., E]``.

    Returns ``(indices[..., k] uint32, weights[..., k] float32)``: softmax over all experts (in
    float32), the ``top_k`` largest probabilities, renormalised to sum to 1 if ``renormalize``
    (``None``: iff ``top_k > 1``).
    """
    probs = mx.softmax(logits.astype(mx.float32), axis=-1)
    if top_k == 1:
        inds = mx.argmax(probs, axis=-1, keepdims=True)  # [..., 1]
    else:
        inds = mx.argpartition(-probs, kth=top_k - 1, axis=-1)[..., :top_k]  # [..., k]
    inds = mx.stop_gradient(inds).astype(mx.uint32)
    weights = mx.take_along_axis(probs, inds, axis=-1)
    if (top_k > 1) if renormalize is None else renormalize:
        weights = weights / weights.sum(axis=-1, keepdims=True)
    return inds, weights


# float32 experts are grouped once the (token, slot) pairs average this many rows per expert;
# below it gather_mm (no host sync, no sort) is as fast or faster. Measured in one process with
# BLIS (1 thread), prefill through the whole model: small config (E=8) grouped vs gather_mm +8% at
# 32 rows per expert, +32% at 128; medium (E=16) -6% at 16, +5% at 64. With OpenBLAS 0.3.21
# (M=1 sgemm at reference speed) gather_mm is ~4.7x slower than grouping at 32 rows.
GROUPED_MIN_ROWS_PER_EXPERT = 32


def _expert_linear(layer: SwitchLinear, x: mx.array, e: int, dtype: Optional[mx.Dtype]) -> mx.array:
    w = layer.weight[e]  # [out, in]
    if dtype is not None and w.dtype != dtype:
        w = w.astype(dtype)
    y = x @ w.T
    if "bias" in layer:
        y = y + layer.bias[e].astype(y.dtype)
    return y


def grouped_switch_glu(glu: SwitchGLU, x: mx.array, inds: mx.array, compute_dtype: Optional[mx.Dtype] = None) -> mx.array:
    """``SwitchGLU(x, inds)`` as one dense GEMM per expert over its contiguous slice of tokens.

    ``x`` is ``[..., D]``, ``inds`` is ``[..., k]``; returns ``[..., k, D]`` in ``x.dtype`` like
    ``SwitchGLU``. The (token, slot) pairs are sorted by expert so each expert sees one contiguous
    slice; the expert counts are read back to the host (one synchronisation per call).
    ``compute_dtype`` (e.g. ``mx.float32`` for bfloat16 weights) is the dtype the GEMMs run in;
    each used expert's weights are cast right before its GEMM.
    """
    *lead, k = inds.shape
    D = x.shape[-1]
    E = glu.gate_proj.weight.shape[0]
    flat_x = x.reshape(-1, D)  # [T, D]
    flat_e = inds.reshape(-1)  # [T*k] expert of each (token, slot)
    order = mx.argsort(flat_e)  # [T*k] pairs sorted by expert
    xs = flat_x[order // k]  # [T*k, D] token rows in expert order
    if compute_dtype is not None:
        xs = xs.astype(compute_dtype)
    counts = mx.zeros((E,), dtype=mx.int32).at[flat_e].add(1).tolist()  # host sync
    outs, start = [], 0
    for e, n in enumerate(counts):
        if n == 0:
            continue
        xe = xs[start : start + n]  # [n, D]
        gate = _expert_linear(glu.gate_proj, xe, e, compute_dtype)
        h = glu.activation(_expert_linear(glu.up_proj, xe, e, compute_dtype), gate)  # [n, hidden]
        outs.append(_expert_linear(glu.down_proj, h, e, compute_dtype))  # [n, D]
        start += n
    ys = mx.concatenate(outs, axis=0)  # [T*k, D] in expert order
    return ys[mx.argsort(order)].reshape(*lead, k, D).astype(x.dtype)  # back to (token, slot) order


def needs_grouped_path(glu: SwitchGLU, x: mx.array) -> bool:
    """True when ``gather_mm`` cannot run: unquantized experts, CPU, a non-float32 operand."""
    if not isinstance(glu.gate_proj, SwitchLinear) or mx.default_device() != mx.cpu:
        return False
    return x.dtype != mx.float32 or glu.gate_proj.weight.dtype != mx.float32


def expert_path(glu: SwitchGLU, x: mx.array, inds: mx.array) -> str:
    """Which implementation :meth:`MoE.experts` uses: ``"kernels"``, ``"gather"``, ``"grouped"`` or ``"grouped-fp32"``.

    ``"kernels"`` is ``SwitchGLU`` with zoo's CPU kernels (:func:`kernel_experts`).

    ``"gather"`` is ``SwitchGLU`` (``gather_mm`` / ``gather_qmm``): quantized experts, devices
    other than the CPU, and short float32 inputs. ``"grouped"`` is :func:`grouped_switch_glu` in
    the weights' dtype, ``"grouped-fp32"`` the same with half-precision weights upcast per expert.
    """
    if kernel_experts(glu, x):
        return "kernels"
    if not isinstance(glu.gate_proj, SwitchLinear) or mx.default_device() != mx.cpu:
        return "gather"
    w = glu.gate_proj.weight  # [E, out, in]
    if not needs_grouped_path(glu, x):
        return "grouped" if inds.size >= GROUPED_MIN_ROWS_PER_EXPERT * w.shape[0] else "gather"
    return "grouped-fp32" if fp32_compute(inds.size, w.dtype, w.size // w.shape[0]) else "grouped"


class MoE(nn.Module):
    """Shared-plus-routed MoE feed-forward (HunYuan-Large, arXiv:2411.02265).

    Args:
        dims: model width ``D``.
        hidden_dims: intermediate width of each routed expert.
        num_experts: ``E`` routed experts; ``top_k`` of them run per token.
        shared_hidden_dims: intermediate width of the shared SwiGLU MLP, or ``None`` for none.
        bias: bias on the expert projections (some community checkpoints carry one).
        renormalize: divide the top-k weights by their sum (``None``: iff ``top_k > 1``).

    Parameters: ``gate.wg`` ``[E, D]``, ``switch_mlp.{gate,up,down}_proj.weight`` ``[E, out, in]``,
    ``shared_mlp.{gate,up,down}_proj.weight``. Keep ``gate.wg`` out of quantization.
    """

    def __init__(self, dims: int, hidden_dims: int, num_experts: int, top_k: int, shared_hidden_dims: Optional[int] = None, bias: bool = False,
                 renormalize: Optional[bool] = None):
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k must be in [1, num_experts={num_experts}], got {top_k}")
        self.num_experts, self.top_k = num_experts, top_k
        self.renormalize = renormalize
        self.gate = Router(dims, num_experts)
        self.switch_mlp = SwitchGLU(dims, hidden_dims, num_experts, bias=bias)
        for proj in ("gate_proj", "up_proj", "down_proj"):
            as_kernel_switch(self.switch_mlp[proj])
        if shared_hidden_dims:
            self.shared_mlp = MLP(dims, shared_hidden_dims)

    def experts(self, x: mx.array, inds: mx.array) -> mx.array:
        """Outputs of the selected experts, ``[..., k, D]`` (path chosen by :func:`expert_path`)."""
        path = expert_path(self.switch_mlp, x, inds)
        if path in ("gather", "kernels"):
            return self.switch_mlp(x, inds)
        return grouped_switch_glu(self.switch_mlp, x, inds, mx.float32 if path == "grouped-fp32" else None)

    def _fused_parts(self):
        """``(router weight, shared MLP or None)`` when this block computes what the fused kernel
        does: the :class:`Router` as is, a float ``wg`` without bias, :meth:`experts` not
        overridden, the shared MLP an :class:`MLP`; else ``None``."""
        wg = self.gate.wg
        if (type(self.gate) is not Router or type(wg) is not nn.Linear or "bias" in wg
                or type(self).experts is not MoE.experts):
            return None
        shared = self.get("shared_mlp")
        if shared is not None and type(shared).__call__ is not MLP.__call__:
            return None
        return wg["weight"], shared

    def fusable(self) -> bool:
        """Whether :meth:`fused` serves this block (on the CPU, with zoo's kernels built)."""
        return self._fused_args() is not None

    def fused(self, x: mx.array) -> Optional[mx.array]:
        """The whole block in one kernel call, or ``None`` where it does not serve.

        What the kernel reads of the block is read once and reused while the block's modules and
        arrays stay the same objects (:func:`.fused.remembered`)."""
        if not fused.ready(x):
            return None
        args = fused.remembered(self, MoE._fused_args)
        if args is None:
            return None
        router, (experts, ef), (sh, sf) = args
        renorm = (self.top_k > 1) if self.renormalize is None else bool(self.renormalize)
        return kernels.fused_ffn(x, router, experts, ef, sh, sf, self.top_k, renorm)

    def _fused_args(self):
        """``(router weight, expert arguments, shared arguments)`` for :meth:`fused`, or ``None``."""
        parts = self._fused_parts()
        args = None if parts is None else fused.moe_args(parts[0], self.switch_mlp, parts[1])
        return None if args is None else (parts[0],) + args

    def __call__(self, x: mx.array) -> mx.array:
        y = self.fused(x)
        if y is not None:
            return y
        inds, weights = route(self.gate(x), self.top_k, self.renormalize)  # [B, L, k] each
        y = self.experts(x, inds)  # [B, L, k, D]
        y = (y * weights[..., None]).sum(axis=-2).astype(x.dtype)  # [B, L, D], accumulated in fp32
        if "shared_mlp" in self:
            y = y + self.shared_mlp(x)
        return y


def fused_blocks(model: nn.Module) -> dict:
    """How many MoE blocks and SwiGLU MLPs of ``model`` run as one fused kernel call each when
    zoo's kernels serve the CPU (``zoo load`` reports it): ``{"fused_moe_blocks": n, "fused_mlp_blocks": m}``
    (an MoE's shared MLP is part of its block)."""
    if not fused.enabled():
        return {}
    moes = [m for _, m in model.named_modules() if isinstance(m, MoE) and m.fusable()]
    inside = {id(m.get("shared_mlp")) for m in moes}
    mlps = [m for _, m in model.named_modules()
            if isinstance(m, MLP) and id(m) not in inside and fused.block_args(m) is not None]
    return {k: n for k, n in (("fused_moe_blocks", len(moes)), ("fused_mlp_blocks", len(mlps))) if n}


# -- zoo's CPU kernels for the experts ------------------------------------------------------------


class KernelSwitchLinear(SwitchLinear):
    """mlx-lm's ``SwitchLinear`` whose bfloat16/float16 gather product runs in zoo's CPU kernels."""

    def __call__(self, x: mx.array, indices: mx.array, sorted_indices: bool = False) -> mx.array:
        if not kernels.half_ok(x, self["weight"]):
            return super().__call__(x, indices, sorted_indices)
        y = kernels.gather_half_mm(x, self["weight"], indices)
        if "bias" in self:
            y = y + mx.expand_dims(self["bias"][indices], -2)
        return y

    def to_quantized(self, *args, **kwargs):
        """``SwitchLinear.to_quantized``, returning :class:`KernelQuantizedSwitchLinear`."""
        return as_kernel_switch(super().to_quantized(*args, **kwargs))


class KernelQuantizedSwitchLinear(QuantizedSwitchLinear):
    """mlx-lm's ``QuantizedSwitchLinear`` whose ``gather_qmm`` runs in zoo's CPU kernels."""

    def __call__(self, x: mx.array, indices: mx.array, sorted_indices: bool = False) -> mx.array:
        y = kernels.gather_qmm(x, self["weight"], self["scales"], self.get("biases"), indices, self.group_size,
                               self.bits, self.mode, sorted_indices, getattr(self, "global_scale", None))
        if "bias" in self:
            y = y + mx.expand_dims(self["bias"][indices], -2)
        return y


_KERNEL_SWITCH = {SwitchLinear: KernelSwitchLinear, QuantizedSwitchLinear: KernelQuantizedSwitchLinear}
fused.accept(KernelSwitchLinear, KernelQuantizedSwitchLinear)


def as_kernel_switch(module):
    """``module`` with its class swapped for zoo's kernel subclass if it is exactly mlx-lm's
    ``SwitchLinear`` or ``QuantizedSwitchLinear`` (same parameters); anything else as is."""
    cls = _KERNEL_SWITCH.get(type(module))
    if cls is not None:
        module.__class__ = cls
    return module


def kernel_experts(glu: SwitchGLU, x: mx.array) -> bool:
    """True when ``glu``'s experts run in zoo's CPU kernels for this input."""
    proj = glu.gate_proj
    if isinstance(proj, KernelQuantizedSwitchLinear):
        return kernels.active() and proj.mode == "affine" and proj.bits in kernels.QUANT_BITS and \
            proj.group_size in kernels.QUANT_GROUPS and x.dtype in kernels.FLOATS
    return isinstance(proj, KernelSwitchLinear) and kernels.half_ok(x, proj.weight)
