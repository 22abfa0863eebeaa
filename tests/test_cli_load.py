"""The figures `zoo load` prints, checked against independent measurements on real models."""

from __future__ import annotations

import json

import pytest

import mlx.core as mx

from zoo_registry.generation import build_prompt, human_bytes, human_count, model_stats  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from zoo_hunyuan import tiny as gen

    from zoo_registry.loading import load

    folder = gen.generate(tmp_path_factory.mktemp("tiny") / "ckpt", seed=0)
    model, tokenizer = load(str(folder))
    return folder, model, tokenizer


def measured_kv_bytes_per_token(model):
    """Run one token through the model's real caches (evaluated) and weigh what they stored."""
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    mx.eval(model(mx.array([[1]]), cache=cache))
    seen, total, storing = set(), 0, 0
    for c in cache:
        if id(c) not in seen:
            seen.add(id(c))
            keys, values = c.keys_and_values()  # the first `offset` (= 1) positions
            mx.eval(keys, values)
            total += keys.nbytes + values.nbytes
            storing += keys.nbytes > 0
    return total, storing


def test_kv_bytes_per_token_equals_what_the_cache_stores(tiny):
    folder, model, _ = tiny
    config = json.loads((folder / "config.json").read_text())
    stats = model_stats(model, config)
    assert (stats.kv_bytes_per_token, stats.kv_caches) == measured_kv_bytes_per_token(model)
    layers, per_layer = config["num_hidden_layers"], 2 * config["num_key_value_heads"] * 16 * 4  # head_dim 16, float32
    # CLA stores K/V once per group: only the layers that project their own count (mlx-lm's full
    # per-layer cache is the test below); the unhalved size would be a regression
    assert config["use_cla"] and config["cla_share_factor"] == 2
    assert stats.kv_bytes_per_token == layers // config["cla_share_factor"] * per_layer


def test_kv_bytes_of_mlx_lm_hunyuan_count_every_layer(tiny):
    """mlx-lm's hunyuan (like Tencent's code) keeps a full cache in CLA layers too: all layers count."""
    from mlx_lm.models import hunyuan

    folder, _, _ = tiny
    config = json.loads((folder / "config.json").read_text())
    model = hunyuan.Model(hunyuan.ModelArgs.from_dict(config))
    stats = model_stats(model, config)
    assert (stats.kv_bytes_per_token, stats.kv_caches) == measured_kv_bytes_per_token(model)
    assert stats.kv_bytes_per_token == config["num_hidden_layers"] * 2 * config["num_key_value_heads"] * 16 * 4


def test_parameter_counts_equal_the_checkpoint_tensors(tiny):
    from loading_fixtures import counts_from_safetensors

    folder, model, _ = tiny
    config = json.loads((folder / "config.json").read_text())
    stats = model_stats(model, config)
    total, active = counts_from_safetensors(folder)
    assert (stats.parameters, stats.active_parameters) == (total, active)
    assert stats.parameter_bytes == 4 * total and stats.dtype == "float32"


def test_top_k_comes_from_the_moe_blocks(tiny):
    """A top-2 model counts 2 of 4 experts per token (mlx-lm's own hunyuan module, per-layer topk)."""
    from mlx_lm.models import hunyuan

    folder, _, _ = tiny
    config = json.loads((folder / "config.json").read_text())
    config["moe_topk"] = 2
    model = hunyuan.Model(hunyuan.ModelArgs.from_dict(config))
    stats = model_stats(model, config)
    experts = sum(v.size for k, v in __import__("mlx.utils", fromlist=["x"]).tree_flatten(model.parameters()) if "switch_mlp" in k)
    assert stats.active_parameters == stats.parameters - experts // 2


def test_quantized_weights_count_what_they_stand_for(tiny):
    import mlx.nn as nn

    from zoo_registry.loading import load_model

    folder, model, _ = tiny
    before = model_stats(model)
    quantized = load_model(str(folder), quantize=4, group_size=32)
    after = model_stats(quantized)
    assert after.parameters == before.parameters
    assert after.active_parameters == before.active_parameters
    assert after.quantization == {"bits": 4, "group_size": 32}
    assert after.parameter_bytes < before.parameter_bytes / 3
    assert any(isinstance(m, nn.QuantizedLinear) for _, m in quantized.named_modules())


def test_chat_template_is_used_when_present(tiny):
    _, _, tokenizer = tiny
    with_template = build_prompt(tokenizer, "Hello")
    plain = build_prompt(tokenizer, "Hello", chat_template=False)
    assert tokenizer.decode(with_template) == "<|bos|><|user|>Hello<|eos|><|assistant|>"
    assert tokenizer.decode(plain) == "Hello"


def test_human_units():
    assert human_bytes(1024) == "1.02 KB" and human_bytes(512) == "512 B" and human_bytes(2.5e9) == "2.50 GB"
    assert human_count(564736) == "564.74K" and human_count(80393183232) == "80.39B" and human_count(12) == "12"


def test_progress_bar_live_summary_and_delay(monkeypatch):
    import io

    from zoo_registry.progress import Progress

    monkeypatch.setenv("ZOO_PROGRESS", "1")  # live bar even though the stream is not a terminal
    out = io.StringIO()
    with Progress("reading", total=4, stream=out, unit=" layers") as bar:
        for _ in range(4):
            bar.update()
    text = out.getvalue()
    assert "\r" in text and "[########################] 4/4 layers" in text and text.endswith("\n")

    monkeypatch.delenv("ZOO_PROGRESS")  # not a terminal: one summary line at the end
    out = io.StringIO()
    with Progress("creating", total=2, stream=out) as bar:
        bar.update(2)
    assert out.getvalue().startswith("creating: done in ") and "\r" not in out.getvalue()

    out = io.StringIO()  # fast steps stay silent behind a delay
    with Progress("quick", total=1, stream=out, delay=60) as bar:
        bar.update()
    assert out.getvalue() == ""

    monkeypatch.setenv("ZOO_PROGRESS", "0")
    out = io.StringIO()
    with Progress("silenced", total=1, stream=out) as bar:
        bar.update()
    assert out.getvalue() == ""


def test_lazy_load_then_layerwise_evaluation_gives_the_same_model(tiny):
    from mlx.utils import tree_flatten

    from zoo_registry.generation import evaluate_with_progress as evaluate_parameters
    from zoo_registry.loading import load_model

    folder, model, _ = tiny
    lazy = load_model(str(folder), lazy=True)
    assert 0 < evaluate_parameters(lazy, delay=60) < 60  # the seconds it took (a number that is >= 0 always)
    ours, ref = dict(tree_flatten(lazy.parameters())), dict(tree_flatten(model.parameters()))
    assert ours.keys() == ref.keys() and len(ref) > 10  # all(...) below must not pass on an empty model
    assert all(mx.array_equal(ours[k], ref[k]).item() for k in ref)


def test_deprecated_generation_stream_still_yields_mlx_lms_text(tiny):
    from mlx_lm.generate import stream_generate

    from zoo_registry.generation import GenerationStats, stream

    _, model, tokenizer = tiny
    ids = build_prompt(tokenizer, "Hello")
    expected = "".join(r.text for r in stream_generate(model, tokenizer, ids, max_tokens=8))  # mlx-lm's greedy default
    stats = GenerationStats()
    with pytest.warns(DeprecationWarning, match="zoo_registry.chat"):
        assert "".join(stream(model, tokenizer, ids, max_tokens=8, stats=stats)) == expected
    assert 0 < stats.generation_tokens <= 8 and stats.prompt_tokens == len(ids)
