"""Parity with transformers' HunYuan models on checkpoints written by their own save_pretrained.

transformers is the oracle for top-k > 1 routing (renormalised; mlx-lm never renormalises) and for
``hunyuan_v1_dense`` with head_dim != hidden / heads and an untied head (mlx-lm's hunyuan.py takes the
softmax top-k weights as they are; Tencent's and transformers' gates renormalise them). The saved folders use transformers 5's layout:
``rope_parameters`` instead of ``rope_theta`` / ``rope_scaling`` and per-expert weight names.
"""

import json

import numpy as np
import pytest

import torch
import transformers
import mlx.core as mx

pytestmark = pytest.mark.parity

VOCAB = 96
COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=48, num_hidden_layers=3, num_attention_heads=8,
              num_key_value_heads=2, rms_norm_eps=1e-5, max_position_embeddings=256, rope_theta=10000.0,
              rope_scaling={"type": "dynamic", "alpha": 1000.0, "factor": 1.0})


def randomize_(model, seed, std=0.1):
    """Normal(0, std) everywhere; norm weights around 1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std + (1.0 if "norm" in name else 0.0))
    return model


def save_tf(model, folder):
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def load_with_test_helper(folder):
    """Independent of zoo's loader: build from config.json, stack per-expert tensors by hand."""
    import re

    from zoo_hunyuan.model import build

    model = build(json.loads((folder / "config.json").read_text()))
    weights = {}
    for f in sorted(folder.glob("*.safetensors")):
        weights.update(mx.load(str(f)))
    experts = {}
    for name in list(weights):
        m = re.fullmatch(r"(model\.layers\.\d+\.mlp)\.experts\.(\d+)\.(\w+_proj)\.weight", name)
        if m:
            experts.setdefault((m[1], m[3]), {})[int(m[2])] = weights.pop(name)
    for (prefix, proj), per_expert in experts.items():
        weights[f"{prefix}.switch_mlp.{proj}.weight"] = mx.stack([per_expert[e] for e in sorted(per_expert)])
    if model.tie_word_embeddings:
        weights.pop("lm_head.weight", None)
    model.load_weights(list(weights.items()), strict=True)
    return model


def load_with_zoo(folder):
    """zoo's own loader: config validation + the plugin's sanitize rules."""
    from zoo_registry.loading import load_model

    model = load_model(str(folder))
    return model[0] if isinstance(model, tuple) else model


LOADERS = pytest.mark.parametrize("load_zoo", [load_with_test_helper, load_with_zoo], ids=["test-helper", "zoo-load_model"])


def tf_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor(ids)).logits.float().numpy()


def zoo_logits(model, ids):
    return np.array(model(mx.array(ids)).astype(mx.float32))


IDS = np.random.default_rng(0).integers(0, VOCAB, (2, 13))
# README, "Numerics": within 1e-5 of transformers (measured up to 3e-6 on MLX's bundled BLAS, BLIS and MKL)
PARITY = 1e-5


@LOADERS
def test_moe_top_k_matches_transformers(tmp_path, load_zoo):
    cfg = transformers.HunYuanMoEV1Config(**COMMON, head_dim=8, num_experts=6, moe_topk=3, tie_word_embeddings=True)
    tf = randomize_(transformers.HunYuanMoEV1ForCausalLM(cfg).eval(), seed=1)
    folder = save_tf(tf, tmp_path / "moe")
    saved = json.loads((folder / "config.json").read_text())
    assert "rope_parameters" in saved and "rope_scaling" not in saved  # the transformers-5 form
    zoo = load_zoo(folder)
    diff = np.abs(zoo_logits(zoo, IDS) - tf_logits(tf, IDS)).max()
    assert diff <= PARITY, diff


@LOADERS
def test_dense_head_dim_untied_matches_transformers(tmp_path, load_zoo):
    cfg = transformers.HunYuanDenseV1Config(**COMMON, head_dim=12, tie_word_embeddings=False)
    tf = randomize_(transformers.HunYuanDenseV1ForCausalLM(cfg).eval(), seed=2)
    zoo = load_zoo(save_tf(tf, tmp_path / "dense"))
    assert "lm_head" in zoo
    diff = np.abs(zoo_logits(zoo, IDS) - tf_logits(tf, IDS)).max()
    assert diff <= PARITY, diff
