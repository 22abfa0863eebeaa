"""Fused feed-forward blocks on the CPU: a SwiGLU MLP or a whole MoE block in one kernel call.

At decode (one token) a SwiGLU MLP is three products and two elementwise ops, and an MoE block
(router matmul, softmax, top-k, gathers, three expert products, the activation, the weighted
combine, the shared MLP) about 25 MLX ops, each a separate CPU dispatch that costs more than the
product it wraps on a small model. When zoo's CPU kernels are built (:mod:`zoo_registry.kernels`)
and every projection is in a format they read, :func:`mlp` and :meth:`.moe.MoE.fused` hand the block to the
``fused_ffn`` primitive (``csrc/moe.h``): one dispatch computes ``shared(x) + sum_j w_j *
expert_j(x)`` with the routing done exactly as :func:`.moe.route` does it (float32 router,
softmax over all experts, top-k, renormalised when the block says so), gate and up in one pass
over the input, ``silu(gate) * up``, down, and the combine accumulated in float32 and rounded
once. The same call serves prefill (each expert's rows multiplied as one block; docs/kernels.md).

Which projections: zoo's and MLX's ``QuantizedLinear`` / mlx-lm's ``QuantizedSwitchLinear`` in
MLX's affine 4/8-bit format (group sizes 32/64/128), and float32/bfloat16/float16 ``Linear`` /
``SwitchLinear`` weights, without bias. Anything else (other quantization modes, sharded layers,
a bias, a subclass that changes the block) keeps the unfused path, as do other devices,
``ZOO_KERNELS=off`` and ``ZOO_FUSED=off`` (the unfused kernels only, for comparisons; or
:func:`disabled`). Results equal the unfused path within float rounding (``tests/test_fused_ffn.py``).

Reading a block's arguments (types, formats, the arrays of its ~10 modules) costs more Python time
per token than building the kernel call: :func:`remembered` keeps them on the block with what they
were read from and reuses them while every module of the block still has the same class and the
same array and child objects (``load_weights``, ``update``, ``nn.quantize``, ``adopt``'s class
swap all replace one of those, so the next call reads the block again).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from itertools import chain
from operator import is_
from typing import Callable, List, Optional, Tuple

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.switch_layers import QuantizedSwitchLinear, SwiGLU, SwitchGLU, SwitchLinear

from .. import kernels

Proj = Tuple[List[mx.array], Tuple[int, int]]
_OFF = int(os.environ.get("ZOO_FUSED", "").strip().lower() in ("0", "off", "false", "no"))


@contextmanager
def disabled():
    """The unfused path inside the block (zoo's kernels still serve its products): for comparisons."""
    global _OFF
    _OFF += 1
    try:
        yield
    finally:
        _OFF -= 1


# The exact layer classes whose parameters mean what the kernel reads (subclasses may change the
# product, e.g. mlx's sharded linears all-sum their output); zoo's own subclasses are added by
# the modules that define or use them (:func:`accept`).
_LAYERS = {nn.Linear, nn.QuantizedLinear, SwitchLinear, QuantizedSwitchLinear}


def accept(*classes) -> None:
    """Let layers of exactly these classes (same parameters and product as MLX's) be fused."""
    _LAYERS.update(classes)


def proj_args(layer) -> Optional[Proj]:
    """``(arrays, (bits, group_size))`` for a projection the fused kernel reads, else ``None``.

    Parameters are read as dict entries (a missing attribute of an ``nn.Module`` goes through its
    Python ``__getattr__``; this runs for every block at every step)."""
    if type(layer) not in _LAYERS or "bias" in layer:
        return None
    scales = layer.get("scales")
    if scales is not None:
        biases = layer.get("biases")
        if (biases is not None and layer.mode == "affine" and layer.bits in kernels.QUANT_BITS
                and layer.group_size in kernels.QUANT_GROUPS and layer.get("global_scale") is None):
            return [layer["weight"], scales, biases], (layer.bits, layer.group_size)
        return None
    w = layer["weight"]
    return ([w], (0, 0)) if w.dtype in kernels.FLOATS else None


def block_args(block) -> Optional[Tuple[List[mx.array], List[int]]]:
    """The arrays and flat ``(bits, group_size)`` formats of a SwiGLU block's gate, up, down."""
    arrays: List[mx.array] = []
    formats: List[int] = []
    for name in ("gate_proj", "up_proj", "down_proj"):
        got = proj_args(block[name])
        if got is None:
            return None
        arrays += got[0]
        formats += got[1]
    return arrays, formats


def enabled() -> bool:
    """False under ``ZOO_FUSED=off`` or inside :func:`disabled` (the kernels may still be active)."""
    return not _OFF


def ready(x: mx.array) -> bool:
    """True when the fused kernel can run for input ``x`` (built, CPU device, a float input)."""
    return not _OFF and x.dtype in kernels.FLOATS and x.ndim >= 1 and kernels.fused_ffn_active()


def mlp(block, x: mx.array) -> Optional[mx.array]:
    """``down(silu(gate(x)) * up(x))`` in one kernel call, or ``None`` when it does not serve ``block``
    (its arguments read once: :func:`remembered`)."""
    if not ready(x):
        return None
    args = remembered(block, block_args)
    if args is None:
        return None
    return kernels.fused_ffn(x, None, [], [], args[0], args[1])


def moe_args(router: mx.array, glu, shared) -> Optional[tuple]:
    """``((expert arrays, formats), (shared arrays, formats))`` when the kernel reads this MoE's
    parts, else ``None``. ``router``: the float ``[E, D]`` router weight; ``glu``: mlx-lm's
    ``SwitchGLU`` of the routed experts; ``shared``: a SwiGLU block or ``None``."""
    if router.dtype not in kernels.FLOATS or type(glu) is not SwitchGLU or type(glu.activation) is not SwiGLU:
        return None
    experts = block_args(glu)
    sh = ([], []) if shared is None else block_args(shared)
    if experts is None or sh is None:
        return None
    return experts, sh


# -- the arguments, read once per block ------------------------------------------------------------


class _Remembered:
    """Kernel arguments read from a block, with a snapshot of what they were read from: each module's
    class and its dict entries (arrays, child modules), compared by identity. Not a dict, list or
    tuple, so ``nn.Module`` keeps it out of the block's parameters; a copy or a pickle of the block
    gets an empty one and reads its own arguments again."""

    __slots__ = ("modules", "types", "sizes", "entries", "args")

    def __init__(self, owner=None, modules=(), args=None):
        # the owner is checked as one of the modules but not kept: no reference cycle keeps a model alive
        self.modules, self.args = list(modules), args
        mods = [owner] + self.modules if owner is not None else []
        self.types, self.sizes = list(map(type, mods)), list(map(len, mods))
        self.entries = tuple(chain.from_iterable(map(dict.values, mods))) if mods else None

    def valid(self, owner) -> bool:
        """Whether ``owner`` and the modules are still of the same classes with the same entries (C-level
        loops: this runs per block per token)."""
        if self.entries is None:
            return False
        mods = [owner] + self.modules
        return (list(map(type, mods)) == self.types and list(map(len, mods)) == self.sizes
                and all(map(is_, chain.from_iterable(map(dict.values, mods)), self.entries)))

    def __reduce__(self):
        return _Remembered, ()

    def __deepcopy__(self, memo):
        return _Remembered()


def remembered(owner, read: Callable) -> object:
    """``read(owner)`` (the block's kernel arguments, or ``None`` when the kernel does not serve it),
    reused from the last call while ``owner`` and every module under it are unchanged (same
    classes, same arrays and children)."""
    kept = owner.__dict__.get("_zoo_fused_args")
    if kept is not None and kept.valid(owner):
        return kept.args
    args = read(owner)
    owner.__dict__["_zoo_fused_args"] = _Remembered(owner, [m for m in owner.modules() if m is not owner], args)
    return args
