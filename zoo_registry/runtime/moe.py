"""Mixture-of-Experts feed-forward block: fp32 softmax router, top-k routed SwiGLU experts, shared MLP.

HunYuan-Large (Sun et al., arXiv:2411.02265) pairs one always-on *shared* expert with routed
experts: ``y = shared_mlp(x) + sum_k w_k * expert_k(x)``. The shared MLP learns what every token
needs, the routed experts specialise. Routing, as in the reference code:

- the router ``gate.wg`` is a bias-free ``Linear(D, E)`` evaluated in float32 (near-tied experts
  must not flip with the activation dtype);
- softmax over *all* experts, then the top-k;
- the k weights are renormalised to sum to 1 iff ``top_k > 1`` (top-1 keeps the raw probability:
  HunYuan-Large's top1gating; top-k divides by the sum: its topkgating, used by Hunyuan-A13B);
- no capacity limit, no token is ever dropped (inference semantics).

Routed experts live in mlx-lm's ``SwitchGLU`` (``switch_mlp.{gate,up,down}_proj`` stacked
``[E, out, in]``) so ``mlx.nn.quantize`` swaps in ``QuantizedSwitchLinear`` as for any mlx-lm MoE.

MLX's CPU ``gather_mm`` only supports float32. For bfloat16/float16 on the CPU the unquantized
experts run through :func:`grouped_switch_glu` instead: tokens are sorted by expert and each
expert runs one dense matmul on its contiguous slice (the shape a later grouped-GEMM path wants).
"""

from __future__ import annotations

from typing import Optional, Tuple

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.switch_layers import SwitchGLU, SwitchLinear

from .mlp import MLP


class Router(nn.Module):
    """The token router: ``wg`` is ``Linear(D, E)`` without bias, always computed in float32.

    A quantized ``wg`` (if a user quantized it anyway) still works; its logits are upcast.
    """

    def __init__(self, dims: int, num_experts: int):
        super().__init__()
        self.wg = nn.Linear(dims, num_experts, bias=False)

    def __call__(self, x: mx.array) -> mx.array:
        if isinstance(self.wg, nn.Linear) and "weight" in self.wg:
            return x.astype(mx.float32) @ self.wg.weight.astype(mx.float32).T  # [..., E] fp32 logits
        return self.wg(x).astype(mx.float32)


def route(logits: mx.array, top_k: int) -> Tuple[mx.array, mx.array]:
    """Pick experts from router logits ``[..., E]``.

    Returns ``(indices[..., k] uint32, weights[..., k] float32)``: softmax over all experts (in
    float32), the ``top_k`` largest probabilities, renormalised to sum to 1 iff ``top_k > 1``.
    """
    probs = mx.softmax(logits.astype(mx.float32), axis=-1)
    if top_k == 1:
        inds = mx.argmax(probs, axis=-1, keepdims=True)  # [..., 1]
    else:
        inds = mx.argpartition(-probs, kth=top_k - 1, axis=-1)[..., :top_k]  # [..., k]
    inds = mx.stop_gradient(inds).astype(mx.uint32)
    weights = mx.take_along_axis(probs, inds, axis=-1)
    if top_k > 1:
        weights = weights / weights.sum(axis=-1, keepdims=True)
    return inds, weights


def _expert_linear(layer: SwitchLinear, x: mx.array, e: int) -> mx.array:
    y = x @ layer.weight[e].T
    if "bias" in layer:
        y = y + layer.bias[e]
    return y


def grouped_switch_glu(glu: SwitchGLU, x: mx.array, inds: mx.array) -> mx.array:
    """``SwitchGLU(x, inds)`` as one dense matmul per expert, for dtypes ``gather_mm`` lacks on CPU.

    ``x`` is ``[..., D]``, ``inds`` is ``[..., k]``; returns ``[..., k, D]`` like ``SwitchGLU``.
    The (token, slot) pairs are sorted by expert so each expert sees one contiguous slice; the
    expert counts are read back to the host (one synchronisation per call).
    """
    *lead, k = inds.shape
    D = x.shape[-1]
    flat_x = x.reshape(-1, D)  # [T, D]
    flat_e = inds.reshape(-1)  # [T*k] expert of each (token, slot)
    order = mx.argsort(flat_e)  # [T*k] slots sorted by expert
    xs = flat_x[order // k]  # [T*k, D] token rows in expert order
    E = glu.gate_proj.weight.shape[0]
    counts = mx.zeros((E,), dtype=mx.int32).at[flat_e].add(1).tolist()
    outs, start = [], 0
    for e, n in enumerate(counts):
        if n == 0:
            continue
        xe = xs[start : start + n]  # [n, D]
        h = glu.activation(_expert_linear(glu.up_proj, xe, e), _expert_linear(glu.gate_proj, xe, e))
        outs.append(_expert_linear(glu.down_proj, h, e))  # [n, D]
        start += n
    ys = mx.concatenate(outs, axis=0)  # [T*k, D] in expert order
    return ys[mx.argsort(order)].reshape(*lead, k, D)  # back to (token, slot) order


def needs_grouped_path(glu: SwitchGLU, x: mx.array) -> bool:
    """True when ``gather_mm`` cannot run: unquantized experts, CPU, a non-float32 operand."""
    if not isinstance(glu.gate_proj, SwitchLinear) or mx.default_device() != mx.cpu:
        return False
    return x.dtype != mx.float32 or glu.gate_proj.weight.dtype != mx.float32


class MoE(nn.Module):
    """Shared-plus-routed MoE feed-forward (HunYuan-Large, arXiv:2411.02265).

    Args:
        dims: model width ``D``.
        hidden_dims: intermediate width of each routed expert.
        num_experts: ``E`` routed experts; ``top_k`` of them run per token.
        shared_hidden_dims: intermediate width of the shared SwiGLU MLP, or ``None`` for none.
        bias: bias on the expert projections (some community checkpoints carry one).

    Parameters: ``gate.wg`` ``[E, D]``, ``switch_mlp.{gate,up,down}_proj.weight`` ``[E, out, in]``,
    ``shared_mlp.{gate,up,down}_proj.weight``. Keep ``gate.wg`` out of quantization.
    """

    def __init__(self, dims: int, hidden_dims: int, num_experts: int, top_k: int, shared_hidden_dims: Optional[int] = None, bias: bool = False):
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k must be in [1, num_experts={num_experts}], got {top_k}")
        self.num_experts, self.top_k = num_experts, top_k
        self.gate = Router(dims, num_experts)
        self.switch_mlp = SwitchGLU(dims, hidden_dims, num_experts, bias=bias)
        if shared_hidden_dims:
            self.shared_mlp = MLP(dims, shared_hidden_dims)

    def experts(self, x: mx.array, inds: mx.array) -> mx.array:
        """Outputs of the selected experts, ``[..., k, D]``."""
        if needs_grouped_path(self.switch_mlp, x):
            return grouped_switch_glu(self.switch_mlp, x, inds)
        return self.switch_mlp(x, inds)

    def __call__(self, x: mx.array) -> mx.array:
        inds, weights = route(self.gate(x), self.top_k)  # [B, L, k] each
        y = self.experts(x, inds)  # [B, L, k, D]
        y = (y * weights[..., None]).sum(axis=-2).astype(x.dtype)  # [B, L, D], accumulated in fp32
        if "shared_mlp" in self:
            y = y + self.shared_mlp(x)
        return y
