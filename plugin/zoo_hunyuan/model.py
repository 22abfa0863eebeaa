"""The HunYuan decoder family in MLX, assembled from zoo's shared runtime components.

One module serves every variant (Sun et al., "Hunyuan-Large", arXiv:2411.02265):

- HunYuan-Large (``hunyuan``): MoE top-1 plus a shared MLP, CLA (K/V shared by
  ``cla_share_factor`` adjacent layers), QK-norm after NTK-alpha RoPE;
- Hunyuan-A13B (``hunyuan`` / ``hunyuan_v1_moe``): top-8 renormalised routing, no CLA;
- legacy Hunyuan-7B (``hunyuan`` with ``num_experts: 1``) and ``hunyuan_v1_dense``: plain SwiGLU.

The decoder is pre-norm Llama style: ``h += attn(input_layernorm(h))``, ``h += mlp(post_attention_layernorm(h))``,
``logits = lm_head(norm(h))`` (the embedding matrix when ``tie_word_embeddings``).

It follows mlx-lm's model protocol (``model(ids, cache)``, ``model.layers``, works with
``make_prompt_cache`` and ``stream_generate``) and uses mlx-lm's parameter names, so a checkpoint
saved by mlx-lm's ``hunyuan`` module loads as is.

With CLA a group's K/V is cached once, in the owner layer's cache; the other layers' caches are
zero-byte shadows (:mod:`zoo_registry.runtime.cache`), so the KV cache is ``1 / cla_share_factor``
of mlx-lm's. There is deliberately no ``make_cache()``: mlx-lm's default one-cache-per-layer list
is what the shadows need, and it keeps ``max_kv_size`` (rotating caches) working, which
``make_prompt_cache`` ignores for models that define ``make_cache``. There is deliberately no ``sanitize()``:
other checkpoint layouts are mapped by the plugin's rule files.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, List, Optional

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.base import create_attention_mask

from zoo_registry.runtime.attention import Attention
from zoo_registry.runtime.linear import Linear, matmul_t
from zoo_registry.runtime.mlp import MLP
from zoo_registry.runtime.moe import MoE
from zoo_registry.runtime.norm import RMSNorm
from zoo_registry.runtime.rope import make_rope

from .config import normalize, owns_kv


class DecoderLayer(nn.Module):
    """One pre-norm block: attention (maybe a CLA consumer), then a dense MLP or an MoE block."""

    def __init__(self, cfg: dict, layer: int, rope: nn.Module):
        super().__init__()
        hidden, eps = cfg["hidden_size"], cfg["rms_norm_eps"]
        self.self_attn = Attention(
            hidden,
            cfg["num_attention_heads"],
            cfg["num_key_value_heads"],
            cfg["head_dim"],
            rope,
            kv_proj=owns_kv(cfg, layer),
            qk_norm=cfg["use_qk_norm"],
            norm_eps=eps,
            bias=cfg["attention_bias"],
        )
        # without CLA no layer attends over another's K/V: owners skip building the hand-over
        self.self_attn.shares_kv = bool(cfg["use_cla"] and cfg["cla_share_factor"] > 1)
        num_experts = cfg["num_experts"][layer]
        if num_experts == 1:
            self.mlp = MLP(hidden, cfg["intermediate_size"])
        else:
            shared = cfg["num_shared_expert"][layer]
            shared_dims = cfg["intermediate_size"] * shared if cfg["use_mixed_mlp_moe"] and shared else None
            self.mlp = MoE(hidden, cfg["moe_intermediate_size"][layer], num_experts, cfg["moe_topk"][layer], shared_dims,
                           renormalize=cfg.get("moe_renormalize"))
        self.input_layernorm = RMSNorm(hidden, eps=eps)
        self.post_attention_layernorm = RMSNorm(hidden, eps=eps)

    def __call__(self, x: mx.array, mask: Optional[Any] = None, cache: Optional[Any] = None, kv_states=None):
        # submodules by key: nn.Module's __getattr__ is a slow path, and this runs per layer per token
        r, kv_states = self["self_attn"](self["input_layernorm"](x), mask, cache, kv_states)
        h = x + r
        return h + self["mlp"](self["post_attention_layernorm"](h)), kv_states


class HunYuanModel(nn.Module):
    """Embeddings, the decoder layers and the final norm (``model.*`` in checkpoints)."""

    def __init__(self, cfg: dict):
        super().__init__()
        rope = make_rope(cfg["head_dim"], cfg["rope_theta"], cfg["rope_scaling"], cfg.get("max_position_embeddings"))
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = [DecoderLayer(cfg, i, rope) for i in range(cfg["num_hidden_layers"])]
        self.norm = RMSNorm(cfg["hidden_size"], eps=cfg["rms_norm_eps"])

    def __call__(self, inputs: mx.array, cache: Optional[List[Any]] = None) -> mx.array:
        h = self["embed_tokens"](inputs)  # [B, L, D]
        layers = self["layers"]
        if cache is None:
            cache = [None] * len(layers)
        mask = create_attention_mask(h, cache[0])
        kv_states = None  # raw K/V of the last layer that projected its own (CLA)
        for layer, c in zip(layers, cache):
            h, kv_states = layer(h, mask, c, kv_states)
        return self["norm"](h)


class Model(nn.Module):
    """HunYuan causal LM: ``model(ids[B, L], cache=None) -> logits[B, L, vocab]``."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.args = SimpleNamespace(**cfg)  # not a dict: nn.Module would treat a dict as a subtree
        self.model_type = cfg["model_type"]
        self.model = HunYuanModel(cfg)
        self.tie_word_embeddings = bool(cfg["tie_word_embeddings"])
        if not self.tie_word_embeddings:
            self.lm_head = Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)

    def __call__(self, inputs: mx.array, cache: Optional[List[Any]] = None) -> mx.array:
        out = self["model"](inputs, cache)
        if self.tie_word_embeddings:
            embed = self["model"]["embed_tokens"]
            if type(embed) is nn.Embedding:  # float32 on the CPU for half-precision prefill (runtime.linear)
                return matmul_t(out, embed.weight)
            return embed.as_linear(out)  # quantized embedding
        return self["lm_head"](out)

    @property
    def layers(self):
        return self.model.layers

    def shard(self, group=None, moe_strategy: str = "auto"):
        """Split the model across ``group`` in place (mlx-lm's ``model.shard`` convention).

        Attention heads (and KV heads, keeping CLA groups aligned), the shared MLP and the experts
        are divided by the runtime's sharding rules; see :mod:`zoo_registry.runtime.sharding`.
        Raises ``ConfigError`` when a size does not divide by the group size.
        """
        from zoo_registry.runtime.sharding import shard_layers

        group = group or mx.distributed.init()
        shard_layers(self.layers, group, moe_strategy=moe_strategy)


def build(config: dict) -> Model:
    """Build a HunYuan model from a config dict (normalised here if it is not yet; idempotent)."""
    return Model(normalize(config))
