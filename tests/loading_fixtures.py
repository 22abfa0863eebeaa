"""Tiny HunYuan checkpoints in every layout, for the loading, sanitize and convert tests.

The reference model is mlx-lm's own ``hunyuan`` module (the layout zoo's module tree copies). A
checkpoint is written from a known set of MLX-layout tensors, re-laid-out by hand (independently
of the rule engine) into the layout under test, so a load can be compared tensor by tensor.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx

from zoo_registry.registry import Architecture, Registry

TINY = {
    "model_type": "hunyuan",
    "vocab_size": 64,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "intermediate_size": 16,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "attention_bias": False,
    "moe_topk": 2,
    "num_experts": 4,
    "num_shared_expert": 1,
    "use_mixed_mlp_moe": True,
    "use_qk_norm": True,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "use_cla": True,
    "cla_share_factor": 2,
    "rope_scaling": {"alpha": 1000.0, "factor": 1.0, "type": "dynamic"},
    "tie_word_embeddings": True,
}


def build_mlx_lm_hunyuan(config: dict):
    """Build mlx-lm's HunYuan model (same parameter names as zoo's)."""
    from mlx_lm.models import hunyuan

    return hunyuan.Model(hunyuan.ModelArgs.from_dict(config))


def test_registry(rules="zoo_hunyuan:rules/hunyuan.yaml") -> Registry:
    """The installed plugins, with ``hunyuan`` served by mlx-lm's model class and zoo's rules."""
    reg = Registry.discover()
    arch = Architecture("hunyuan", "test", model="loading_fixtures:build_mlx_lm_hunyuan", rules=rules)
    reg.architectures["hunyuan"] = arch
    return reg


def reference_weights(config=None, seed=0) -> dict:
    """MLX-layout tensors of a tiny model with distinct random values (evaluated)."""
    config = dict(config or TINY)
    mx.random.seed(seed)
    model = build_mlx_lm_hunyuan(config)
    from mlx.utils import tree_flatten

    weights = {k: mx.random.normal(v.shape).astype(v.dtype) for k, v in tree_flatten(model.parameters())}
    mx.eval(weights)
    return weights


def per_expert(weights: dict, n_experts: int) -> dict:
    """switch_mlp.{proj}.{kind} [E, ...] → experts.{e}.{proj}.{kind} (the HF layout)."""
    out = {}
    for k, v in weights.items():
        if ".mlp.switch_mlp." in k:
            for e in range(n_experts):
                out[k.replace(".switch_mlp.", f".experts.{e}.")] = v[e]
        else:
            out[k] = v
    return out


def write_checkpoint(folder: Path, tensors: dict, config: dict, shards: int = 1) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    names = sorted(tensors)
    if shards == 1:
        mx.save_safetensors(str(folder / "model.safetensors"), {k: tensors[k] for k in names})
        return folder
    weight_map = {}
    for i in range(shards):
        part = names[i::shards]
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        mx.save_safetensors(str(folder / fname), {k: tensors[k] for k in part})
        weight_map.update({k: fname for k in part})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder
