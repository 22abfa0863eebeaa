"""Benchmark checkpoints: the two HunYuan configs of the CPU-performance issue, written to disk once.

Each size gets two folders with the *same* random weights (numpy, seeded):

- ``<size>/``: HunYuan's Hugging Face layout (``config.json`` with ``model_type: hunyuan``,
  one tensor per expert, no ``k_proj``/``v_proj`` in CLA consumer layers), which zoo's loader and
  ``mlx_lm.utils.load_model`` both read;
- ``<size>-tf/``: transformers' ``HunYuanMoEV1ForCausalLM`` layout (``save_pretrained``). It has
  no CLA, so its consumer layers get a copy of their owner's K/V projections: the same weights and
  nearly the same work (two extra small projections per pair of layers), not the same function.

Both carry a word-level tokenizer of the full vocabulary (``w3`` ... ``w31999`` are one token
each), so a prompt of N words is exactly N tokens and every generated id decodes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

import numpy as np

COMMON = {
    "architectures": ["HunYuanForCausalLM"],
    "model_type": "hunyuan",
    "vocab_size": 32000,
    "attention_bias": False,
    "mlp_bias": False,
    "hidden_act": "silu",
    "moe_topk": 2,
    "num_shared_expert": 1,
    "use_mixed_mlp_moe": True,
    "use_qk_norm": True,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "rope_scaling": {"type": "dynamic", "factor": 1.0, "alpha": 1000.0},
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
    "initializer_range": 0.02,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 2,
}

SIZES: Dict[str, dict] = {
    "small": dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=2,
                  intermediate_size=1024, num_experts=8, use_cla=True, cla_share_factor=2),
    "medium": dict(hidden_size=1024, num_hidden_layers=16, num_attention_heads=16, num_key_value_heads=4,
                   intermediate_size=1024, num_experts=16, use_cla=False, cla_share_factor=2),
}

SPECIAL = ["<s>", "</s>", "<pad>"]


def config(size: str) -> dict:
    return {**COMMON, **SIZES[size]}


def owns_kv(cfg: dict, layer: int) -> bool:
    return not cfg["use_cla"] or layer % cfg["cla_share_factor"] == 0


def head_dim(cfg: dict) -> int:
    return cfg["hidden_size"] // cfg["num_attention_heads"]


def hf_weights(cfg: dict, seed: int = 0) -> Dict[str, np.ndarray]:
    """Random float32 weights with HunYuan's HF names; linear layers N(0, 1/fan_in), norms 1."""
    rng = np.random.default_rng(seed)
    D, I, V, E = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_experts"]
    hd, nh, nkv = head_dim(cfg), cfg["num_attention_heads"], cfg["num_key_value_heads"]

    def lin(out, inp):
        return (rng.standard_normal((out, inp), dtype=np.float32) / np.sqrt(inp)).astype(np.float32)

    w = {"model.embed_tokens.weight": rng.standard_normal((V, D), dtype=np.float32) * 0.02,
         "model.norm.weight": np.ones(D, np.float32)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        w[f"{p}.input_layernorm.weight"] = np.ones(D, np.float32)
        w[f"{p}.post_attention_layernorm.weight"] = np.ones(D, np.float32)
        w[f"{p}.self_attn.q_proj.weight"] = lin(nh * hd, D)
        w[f"{p}.self_attn.o_proj.weight"] = lin(D, nh * hd)
        if owns_kv(cfg, i):
            w[f"{p}.self_attn.k_proj.weight"] = lin(nkv * hd, D)
            w[f"{p}.self_attn.v_proj.weight"] = lin(nkv * hd, D)
        w[f"{p}.self_attn.query_layernorm.weight"] = np.ones(hd, np.float32)
        w[f"{p}.self_attn.key_layernorm.weight"] = np.ones(hd, np.float32)
        w[f"{p}.mlp.gate.wg.weight"] = lin(E, D)
        for name in ("gate_proj", "up_proj"):
            w[f"{p}.mlp.shared_mlp.{name}.weight"] = lin(I, D)
        w[f"{p}.mlp.shared_mlp.down_proj.weight"] = lin(D, I)
        for e in range(E):
            for name in ("gate_proj", "up_proj"):
                w[f"{p}.mlp.experts.{e}.{name}.weight"] = lin(I, D)
            w[f"{p}.mlp.experts.{e}.down_proj.weight"] = lin(D, I)
    return w


def write_tokenizer(folder: Path, vocab_size: int) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {t: i for i, t in enumerate(SPECIAL)}
    vocab.update({f"w{i}": i for i in range(len(SPECIAL), vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
        "add_bos_token": False, "add_eos_token": False, "model_max_length": COMMON["max_position_embeddings"],
        "clean_up_tokenization_spaces": False,
    }, indent=1))


def prompt_words(n: int, seed: int = 1, vocab_size: int = 32000) -> str:
    ids = np.random.default_rng(seed).integers(len(SPECIAL), vocab_size, n)
    return " ".join(f"w{i}" for i in ids)


def prompt_ids(n: int, seed: int = 1, vocab_size: int = 32000) -> np.ndarray:
    return np.random.default_rng(seed).integers(len(SPECIAL), vocab_size, n)


def write_hf(folder: Path, size: str, seed: int = 0) -> Path:
    """The HunYuan HF-layout folder (zoo and mlx-lm read it); skipped when already there."""
    from safetensors.numpy import save_file

    if (folder / "model.safetensors").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    cfg = config(size)
    save_file(hf_weights(cfg, seed), str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps({**cfg, "torch_dtype": "float32"}, indent=1))
    write_tokenizer(folder, cfg["vocab_size"])
    return folder


def transformers_model(size: str, seed: int = 0):
    """transformers' HunYuanMoEV1ForCausalLM with the same weights (CLA consumers get a K/V copy)."""
    import torch
    import transformers

    cfg = config(size)
    tcfg = transformers.HunYuanMoEV1Config(
        vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"], intermediate_size=cfg["intermediate_size"],
        num_hidden_layers=cfg["num_hidden_layers"], num_attention_heads=cfg["num_attention_heads"],
        num_key_value_heads=cfg["num_key_value_heads"], head_dim=head_dim(cfg), num_experts=cfg["num_experts"],
        moe_topk=cfg["moe_topk"], rms_norm_eps=cfg["rms_norm_eps"], max_position_embeddings=cfg["max_position_embeddings"],
        rope_theta=cfg["rope_theta"], rope_scaling=dict(cfg["rope_scaling"]), tie_word_embeddings=True,
        bos_token_id=0, eos_token_id=1, pad_token_id=2,
    )
    model = transformers.HunYuanMoEV1ForCausalLM(tcfg).eval()
    w = hf_weights(cfg, seed)
    state = {}
    owner = 0
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        if owns_kv(cfg, i):
            owner = i
        for kv in ("k_proj", "v_proj"):
            state[f"{p}.self_attn.{kv}.weight"] = w[f"model.layers.{owner}.self_attn.{kv}.weight"]
        E = cfg["num_experts"]
        state[f"{p}.mlp.experts.gate_up_proj"] = np.stack([np.concatenate(
            [w[f"{p}.mlp.experts.{e}.gate_proj.weight"], w[f"{p}.mlp.experts.{e}.up_proj.weight"]]) for e in range(E)])
        state[f"{p}.mlp.experts.down_proj"] = np.stack([w[f"{p}.mlp.experts.{e}.down_proj.weight"] for e in range(E)])
    for k, v in w.items():
        if ".mlp.experts." not in k and not k.endswith(("k_proj.weight", "v_proj.weight")):
            state[k] = v
    state["lm_head.weight"] = w["model.embed_tokens.weight"]
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"transformers layout changed: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    return model


def write_tf(folder: Path, size: str, seed: int = 0) -> Path:
    if (folder / "config.json").is_file():
        return folder
    model = transformers_model(size, seed)
    model.save_pretrained(folder, safe_serialization=True)
    write_tokenizer(folder, config(size)["vocab_size"])
    return folder


def active_bytes_per_token(size: str, itemsize: int) -> int:
    """Weight bytes one decode step must read: attention, router, shared MLP, top-k experts, head."""
    cfg = config(size)
    D, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    hd, nh, nkv = head_dim(cfg), cfg["num_attention_heads"], cfg["num_key_value_heads"]
    params = V * D  # the tied LM head (the embedding row read is negligible)
    for i in range(cfg["num_hidden_layers"]):
        params += 2 * nh * hd * D + (2 * nkv * hd * D if owns_kv(cfg, i) else 0)
        params += cfg["num_experts"] * D + 3 * D * I * (1 + cfg["moe_topk"])
    return params * itemsize
