"""zoo plugin for Tencent's HunYuan LLM family (HunYuan-Large, Hunyuan-A13B, Hunyuan dense 0.5B-7B).

Discovered by ``zoo_registry`` through the ``zoo`` entry point ``hunyuan = zoo_hunyuan.hooks``,
exactly like a third-party plugin. Importing this package is cheap: model code (and MLX) is only
imported when a model is built.

Reference: Sun et al., "Hunyuan-Large: An Open-Source MoE Model with 52 Billion Activated
Parameters by Tencent", arXiv:2411.02265.
"""

__version__ = "0.1.0"
