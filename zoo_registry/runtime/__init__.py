"""Shared MLX building blocks that plugins assemble into models.

- :mod:`.rope`: RoPE and its NTK-alpha, linear and dynamic-NTK variants, and ``make_rope``.
- :mod:`.attention`: GQA attention with optional QK-norm after RoPE and cross-layer K/V sharing.
- :mod:`.mlp`: the SwiGLU MLP.
- :mod:`.moe`: fp32-routed top-k MoE on mlx-lm's ``SwitchGLU`` with an optional shared MLP.
- :mod:`.linear`: ``nn.Linear`` that computes half-precision products in float32 on the CPU when
  an optimised BLAS makes that faster (``fast_sgemm``, ``fp32_compute``).
- :mod:`.norm`: ``nn.RMSNorm`` computed as one node by zoo's CPU kernels when they serve.
- :mod:`.cache`: CLA K/V stored once per group inside mlx-lm's prompt caches (zero-byte shadows).

The components know no model family; a plugin maps its config keys onto their arguments.
Importing this package does not import MLX; import the submodules for that.
"""
