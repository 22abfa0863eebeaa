"""Put zoo's kernel layers into a loaded model, and count what they serve.

zoo's own ``Linear`` and MoE layers use the kernels from construction on; :func:`adopt` extends
that to every architecture: after loading (and quantizing) it swaps the class of each layer that
is exactly MLX's ``QuantizedLinear`` / ``QuantizedEmbedding`` or mlx-lm's ``SwitchLinear`` /
``QuantizedSwitchLinear`` for zoo's subclass (same parameters, same results, MLX's ops on other
devices), so plugin models and ``mlx_lm.convert -q`` checkpoints get them too. MLX's ``RMSNorm``
keeps its class (an mlx-lm architecture zoo delegates to stays mlx-lm's model bit for bit in float);
models built from zoo's runtime use :class:`zoo_registry.runtime.norm.RMSNorm` (one node). A plain
``nn.Linear`` keeps its class (a plugin's half-precision dense layers run MLX's matmul).
"""

from __future__ import annotations

from collections import Counter

import mlx.nn as nn

from . import HALF, QUANT_BITS, QUANT_GROUPS, fused_ffn_available, status


def adopt(model: nn.Module) -> int:
    """Swap in zoo's kernel layer classes throughout ``model``; returns how many layers changed."""
    from ..runtime.linear import as_kernel_layer
    from ..runtime.moe import as_kernel_switch

    status()  # load + self-check now, not at the first product (which may be inside mx.compile)
    changed = 0
    for _, module in model.named_modules():
        before = type(module)
        as_kernel_switch(as_kernel_layer(module))
        changed += type(module) is not before
    return changed


def served_layers(model: nn.Module) -> dict:
    """How many of ``model``'s layers the kernels run on the CPU, by kind: matmul layers, ``norms``
    (RMSNorm) and ``attention`` (zoo's attention layers: heads, RoPE, QK-norm and attention fused)."""
    from ..runtime.attention import Attention
    from ..runtime.linear import Linear, QuantizedEmbedding, QuantizedLinear
    from ..runtime.moe import KernelQuantizedSwitchLinear, KernelSwitchLinear
    from ..runtime.norm import RMSNorm

    counts: Counter = Counter()
    for _, m in model.named_modules():
        if isinstance(m, RMSNorm):
            counts["norms"] += 1
        elif isinstance(m, Attention):
            counts["attention"] += 1
        elif isinstance(m, (QuantizedLinear, QuantizedEmbedding, KernelQuantizedSwitchLinear)):
            if m.mode == "affine" and m.bits in QUANT_BITS and m.group_size in QUANT_GROUPS:
                kind = "quantized_experts" if isinstance(m, KernelQuantizedSwitchLinear) else "quantized"
                counts[kind] += 1
        elif isinstance(m, (Linear, KernelSwitchLinear)) and "weight" in m and m.weight.dtype in HALF:
            counts["half_experts" if isinstance(m, KernelSwitchLinear) else "half"] += 1
    return dict(counts)


def report(model: nn.Module) -> dict:
    """What ``zoo load --json`` shows under ``"kernels"``: the status plus the layers served."""
    import mlx.core as mx

    out = status().as_dict()
    out["device"] = "cpu" if mx.default_device() == mx.cpu else "gpu"
    out["active"] = out["available"] and out["device"] == "cpu"
    out["layers"] = served_layers(model) if out["active"] else {}
    if out["active"] and fused_ffn_available():  # SwiGLU MLP / MoE blocks run as one call each
        from ..runtime.moe import fused_blocks

        out["layers"].update(fused_blocks(model))
    return out


def describe(rep: dict) -> str:
    """One line for ``zoo load``: which implementation runs the matmuls, and for how many layers."""
    if rep.get("active"):
        layers = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(rep["layers"].items())) or "no layers to serve"
        threads = rep.get("threads")
        return f"zoo kernels ({rep['isa']}, {threads} thread{'' if threads == 1 else 's'}): {layers}"
    if rep.get("available"):
        return f"MLX's own ops (zoo kernels are CPU-only; device: {rep.get('device')})"
    return f"MLX's own ops ({rep.get('reason')})"
