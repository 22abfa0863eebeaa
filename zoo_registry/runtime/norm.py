"""RMSNorm that runs as one node on the CPU (zoo's kernels), ``mlx.nn.RMSNorm`` otherwise.

RMSNorm (Zhang & Sennrich, arXiv:1910.07467), ``x / sqrt(mean(x^2) + eps) * weight``, is the
pre-norm of every Llama-style decoder layer and HunYuan's (arXiv:2411.02265) too. MLX's CPU backend
computes ``mx.fast.rms_norm`` as ~10 basic ops, each a CPU dispatch; zoo's kernel
(:func:`zoo_registry.kernels.step.rms_norm`) is one. Same parameters as ``mlx.nn.RMSNorm``, so a
plugin's model uses it in its place (HunYuan's and zoo-llama's do). The loader does not swap MLX's
own ``RMSNorm``: an mlx-lm architecture zoo delegates to stays mlx-lm's model, bit for bit in float.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from ..kernels import step


class RMSNorm(nn.RMSNorm):
    """``mlx.nn.RMSNorm`` (same parameters and results) computed by zoo's CPU kernel when it serves."""

    def __call__(self, x: mx.array) -> mx.array:
        return step.rms_norm(x, self["weight"], self.eps)
