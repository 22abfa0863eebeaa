"""hunyuan-tiny: the generator writes a real, deterministic, small HunYuan-Large-layout checkpoint.

The model built from it by zoo is compared with mlx-lm's own ``hunyuan`` module on the same
weights: the tiny model routes top-1 (HunYuan-Large's rule, not renormalised), for which mlx-lm
is the reference implementation (it matches Tencent's code; see the README).
"""

from __future__ import annotations

import json
import re

import pytest

from zoo_hunyuan import tiny


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny.generate(tmp_path_factory.mktemp("tiny") / "ckpt", seed=0)


def test_same_seed_gives_the_same_bytes(folder, tmp_path):
    calls = []
    again = tiny.generate(tmp_path / "again", seed=0, progress=lambda done, total, what: calls.append((done, total)))
    assert calls[0][0] == 0 and calls[-1][0] == calls[-1][1]  # progress from 0 to done
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    for name in names:
        assert (folder / name).read_bytes() == (again / name).read_bytes(), name


def test_other_seed_gives_other_weights_same_tokenizer(folder, tmp_path):
    other = tiny.generate(tmp_path / "other", seed=1)
    assert (other / "model.safetensors").read_bytes() != (folder / "model.safetensors").read_bytes()
    assert (other / "tokenizer.json").read_bytes() == (folder / "tokenizer.json").read_bytes()


def test_size_is_a_few_megabytes(folder):
    total = sum(p.stat().st_size for p in folder.iterdir())
    assert 200_000 < total < 8_000_000


def test_config_has_every_hunyuan_large_feature(folder):
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["model_type"] == "hunyuan"
    assert cfg["use_cla"] is True and cfg["cla_share_factor"] == 2
    assert cfg["num_experts"] > 1 and cfg["moe_topk"] in (1, 2)
    assert cfg["use_mixed_mlp_moe"] is True and cfg["num_shared_expert"] == 1
    assert cfg["use_qk_norm"] is True
    assert cfg["rope_scaling"]["type"] == "dynamic" and cfg["rope_scaling"]["alpha"] > 0 and "factor" in cfg["rope_scaling"]
    tok = json.loads((folder / "tokenizer.json").read_text())
    assert cfg["vocab_size"] == len(tok["model"]["vocab"]) + sum(1 for t in tok["added_tokens"] if t["content"] not in tok["model"]["vocab"])


def test_config_validates_against_the_plugin_schema(folder):
    from zoo_registry.configs import validate_config

    arch, normalised = validate_config(json.loads((folder / "config.json").read_text()), str(folder / "config.json"))
    assert arch.name == "hunyuan" and arch.provider == "hunyuan"


def test_weights_use_hugging_face_names_per_expert_and_cla_layers_lack_kv(folder):
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "numpy") as f:
        keys = set(f.keys())
    cfg = json.loads((folder / "config.json").read_text())
    for i in range(cfg["num_hidden_layers"]):
        for e in range(cfg["num_experts"]):
            for proj in ("gate_proj", "up_proj", "down_proj"):
                assert f"model.layers.{i}.mlp.experts.{e}.{proj}.weight" in keys
        has_kv = i % cfg["cla_share_factor"] == 0
        assert (f"model.layers.{i}.self_attn.k_proj.weight" in keys) is has_kv
        assert (f"model.layers.{i}.self_attn.v_proj.weight" in keys) is has_kv
        assert f"model.layers.{i}.mlp.gate.wg.weight" in keys
        assert f"model.layers.{i}.mlp.shared_mlp.down_proj.weight" in keys
    assert not any("switch_mlp" in k for k in keys)
    assert "lm_head.weight" not in keys  # tied, as every released HunYuan MoE checkpoint


def test_card_parameter_counts_match_the_checkpoint(folder):
    from loading_fixtures import counts_from_safetensors
    from zoo_registry.files import read_yaml
    from zoo_registry.resources import resource_path

    card = read_yaml(resource_path("zoo_hunyuan:cards/hunyuan-tiny.yaml"))
    total, active = counts_from_safetensors(folder)
    assert (card["parameters"]["total"], card["parameters"]["active"]) == (total, active)


def test_tokenizer_round_trips_and_has_a_chat_template(folder):
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    text = "Hello, world! The zoo keeps models. ünïcødé 1 2 3"
    assert tok.decode(tok.encode(text)) == text  # byte-level: any text round-trips
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    assert "{% for message in messages %}" in cfg["chat_template"]
    assert cfg["eos_token"] == "<|eos|>"


def test_atomic_no_partial_folder_on_failure(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tiny, "make_weights", boom)
    with pytest.raises(RuntimeError):
        tiny.generate(tmp_path / "ckpt", seed=0)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a temporary sibling is left


def test_refuses_to_overwrite(folder):
    with pytest.raises(FileExistsError):
        tiny.generate(folder, seed=0)


def test_zoo_model_matches_mlx_lm_hunyuan_on_the_tiny_weights(folder):
    """zoo's loader + HunYuan plugin vs mlx-lm's hunyuan module: same weights, same logits."""
    import mlx.core as mx
    from mlx_lm.models import hunyuan

    from zoo_registry.loading import load_model

    cfg = json.loads((folder / "config.json").read_text())
    ref = hunyuan.Model(hunyuan.ModelArgs.from_dict(cfg))
    ref.load_weights(list(ref.sanitize(mx.load(str(folder / "model.safetensors"))).items()), strict=True)
    ours = load_model(str(folder))
    ids = mx.array([[3, 17, 99, 250, 7, 42, 5, 300]])
    diff = mx.abs(ours(ids) - ref(ids)).max().item()
    assert diff < 1e-4, diff


def test_model_generates_deterministically(folder):
    from mlx_lm.generate import generate

    from zoo_registry.loading import load

    model, tokenizer = load(str(folder))
    a = generate(model, tokenizer, "Tell me", max_tokens=20)
    b = generate(model, tokenizer, "Tell me", max_tokens=20)
    assert a == b and len(a) > 0
    assert not re.fullmatch(r"(.)\1*", a)  # not one character repeated


def test_fitted_bigrams_make_text_from_the_training_text(folder):
    """Greedy decoding follows the fitted bigrams: most next-token choices are bigrams of TEXT."""
    import mlx.core as mx

    from zoo_registry.loading import load

    model, tokenizer = load(str(folder))
    tok = tiny.build_tokenizer()
    counts = tiny.bigram_counts(tok)
    seen = [t for t in range(counts.shape[0]) if counts[t].sum() > 1]
    logits = model(mx.array(seen)[:, None])[:, -1, :]  # one-token prompts: the bigram path
    best = mx.argmax(logits, axis=-1).tolist()
    hits = sum(counts[t, b] > 0 for t, b in zip(seen, best))
    assert hits / len(seen) > 0.6, hits / len(seen)
