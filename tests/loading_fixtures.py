"""Tiny HunYuan checkpoints in every layout, for the loading, sanitize and convert tests.

Reference tensors are drawn in the model's own (MLX) layout; each layout under test is then
produced by hand here, with explicit loops and slicing that share no code with the rule engine,
so that a load can be compared parameter by parameter with the tensors it came from.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten

from zoo_registry.registry import Architecture, Registry

TINY = {
    "model_type": "hunyuan",
    "vocab_size": 64,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "intermediate_size": 32,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "attention_bias": False,
    "moe_topk": 1,
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

#: legacy Hunyuan-7B style: one expert (dense MLP), no CLA, fused qkv_proj / gate_and_up_proj
LEGACY = dict(TINY, num_experts=1, use_cla=False, use_mixed_mlp_moe=False)


def build_zoo(config: dict):
    """zoo's HunYuan model for ``config`` (validated through the installed plugin)."""
    from zoo_registry.configs import validate_config
    from zoo_registry.resources import import_target

    arch, cfg = validate_config(dict(config))
    return import_target(arch.model)(cfg)


def build_mlx_lm_hunyuan(config: dict):
    """mlx-lm's HunYuan model (the module tree whose names zoo's rules target)."""
    from mlx_lm.models import hunyuan

    return hunyuan.Model(hunyuan.ModelArgs.from_dict(config))


def mlx_lm_registry() -> Registry:
    """The installed plugins, with ``hunyuan`` built by mlx-lm's class but sanitized by zoo's rules."""
    reg = Registry.discover()
    reg.architectures["hunyuan"] = Architecture("hunyuan", "test", model="loading_fixtures:build_mlx_lm_hunyuan",
                                                rules="zoo_hunyuan:rules/hunyuan.yaml")
    return reg


def reference_weights(config=None, seed=0, quantize=None) -> dict:
    """Model-layout tensors with distinct random values (evaluated); optionally MLX-quantized."""
    config = dict(config or TINY)
    mx.random.seed(seed)
    model = build_zoo(config)
    from mlx.utils import tree_unflatten

    weights = {k: (mx.random.normal(v.shape) * 0.5).astype(v.dtype) for k, v in tree_flatten(model.parameters())}
    model.update(tree_unflatten(list(weights.items())))
    if quantize:
        import mlx.nn as nn

        nn.quantize(model, group_size=32, bits=quantize,
                    class_predicate=lambda p, m: hasattr(m, "to_quantized") and not p.endswith("mlp.gate.wg") and m.weight.shape[-1] % 32 == 0)
        weights = dict(tree_flatten(model.parameters()))
    mx.eval(weights)
    return weights


def per_expert(weights: dict, n_experts: int) -> dict:
    """``switch_mlp.{proj}.{kind}`` [E, ...] → ``experts.{e}.{proj}.{kind}`` (the HF layout)."""
    out = {}
    for k, v in weights.items():
        if ".mlp.switch_mlp." in k:
            for e in range(n_experts):
                out[k.replace(".switch_mlp.", f".experts.{e}.")] = v[e]
        else:
            out[k] = v
    return out


def transformers_fused(weights: dict, quantized=False) -> dict:
    """transformers 5 in-memory experts: gate_up_proj [E, 2I, H] (gate rows first), down_proj [E, H, I]."""
    out = dict(weights)
    kinds = ("weight", "scales", "biases") if quantized else ("weight",)
    for k in list(weights):
        if k.endswith(".mlp.switch_mlp.gate_proj.weight"):
            prefix = k[: -len("switch_mlp.gate_proj.weight")]
            for kind in kinds:
                gate = out.pop(f"{prefix}switch_mlp.gate_proj.{kind}")
                up = out.pop(f"{prefix}switch_mlp.up_proj.{kind}")
                down = out.pop(f"{prefix}switch_mlp.down_proj.{kind}")
                per = [mx.concatenate([gate[e], up[e]], axis=0) for e in range(gate.shape[0])]
                suffix = f".{kind}" if quantized else ""
                out[f"{prefix}experts.gate_up_proj{suffix}"] = mx.stack(per)
                out[f"{prefix}experts.down_proj{suffix}"] = down
    return out


def legacy_fused(weights: dict, config: dict) -> dict:
    """Hunyuan-7B style: qkv_proj rows grouped per KV head; gate_and_up_proj = [up; gate]."""
    nh, nkv = config["num_attention_heads"], config["num_key_value_heads"]
    G = nh // nkv
    out = dict(weights)
    for k in list(weights):
        if ".self_attn.q_proj." not in k:
            continue
        kind = k.rsplit(".", 1)[1]
        prefix = k[: -len(f"q_proj.{kind}")]
        q, kk, v = (out.pop(f"{prefix}{n}.{kind}") for n in ("q_proj", "k_proj", "v_proj"))
        hd = kk.shape[0] // nkv
        rows = []
        for g in range(nkv):
            rows += [q[g * G * hd:(g + 1) * G * hd], kk[g * hd:(g + 1) * hd], v[g * hd:(g + 1) * hd]]
        out[f"{prefix}qkv_proj.{kind}"] = mx.concatenate(rows, axis=0)
    for k in list(weights):
        if k.endswith(".mlp.up_proj.weight") or ".mlp.up_proj." in k:
            kind = k.rsplit(".", 1)[1]
            prefix = k[: -len(f"up_proj.{kind}")]
            out[f"{prefix}gate_and_up_proj.{kind}"] = mx.concatenate([out.pop(f"{prefix}up_proj.{kind}"), out.pop(f"{prefix}gate_proj.{kind}")], axis=0)
    return out


def write_checkpoint(folder: Path, tensors: dict, config: dict, shards: int = 1) -> Path:
    """config.json + model.safetensors (or ``shards`` files with an index)."""
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


def params(model) -> dict:
    return dict(tree_flatten(model.parameters()))


def max_diff(model, reference: dict) -> float:
    """Largest |Δ| over every parameter; raises if the names differ."""
    got = params(model)
    if sorted(got) != sorted(reference):
        missing, extra = sorted(set(reference) - set(got)), sorted(set(got) - set(reference))
        raise AssertionError(f"parameter names differ: missing {missing[:5]}, extra {extra[:5]}")
    worst = 0.0
    for k, v in reference.items():
        if got[k].shape != v.shape or got[k].dtype != v.dtype:
            raise AssertionError(f"{k}: {got[k].shape} {got[k].dtype} vs {v.shape} {v.dtype}")
        worst = max(worst, float(mx.abs(got[k].astype(mx.float32) - v.astype(mx.float32)).max()))
    return worst


def counts_from_safetensors(folder: Path):
    """``(total, active per token)`` parameters of a MoE checkpoint, from ``model.safetensors``'
    header shapes alone (an oracle independent of zoo's counter): per-expert tensors
    (``.experts.``) count ``moe_topk / num_experts`` of their size, the rest in full."""
    import math

    from safetensors import safe_open

    config = json.loads((Path(folder) / "config.json").read_text())
    with safe_open(str(Path(folder) / "model.safetensors"), "numpy") as f:
        sizes = {k: math.prod(f.get_slice(k).get_shape()) for k in f.keys()}
    total = sum(sizes.values())
    experts = sum(n for k, n in sizes.items() if ".experts." in k)
    return total, total - experts + experts * config["moe_topk"] // config["num_experts"]
