"""The parameter limit applies to every plugin architecture (issue 14, item 2).

zoo-llama's ``normalize`` counts nothing; zoo counts its model from the lazily built module's
shapes. HunYuan's ``normalize`` counts itself (``check_size``), so zoo builds nothing for it. The
expected counts are worked out here from the Llama architecture (embedding, per-layer attention and
SwiGLU projections and norms, final norm, untied head), not read from zoo.
"""

import json
import types

import mlx.core as mx
import pytest

from zoo_registry import ConfigError, PluginError, hookimpl
from zoo_registry.cli.main import main
from zoo_registry.configs import check_parameters, validate_config

TINY = {"model_type": "zoo_llama", "vocab_size": 64, "hidden_size": 64, "intermediate_size": 96,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5}


def llama_parameters(V, D, I, L, H, KV, tied=False):
    head = D // H
    attention = D * H * head + 2 * D * KV * head + H * head * D
    mlp = 3 * D * I
    return V * D + L * (attention + mlp + 2 * D) + D + (0 if tied else V * D)


# 2 x 10^14 parameters: hidden_size 200,000, 313 layers (the extra zeros a typo makes)
HUGE = dict(TINY, vocab_size=32000, hidden_size=200_000, intermediate_size=800_000, num_hidden_layers=313,
            num_attention_heads=100, num_key_value_heads=100)
HUGE_COUNT = llama_parameters(32000, 200_000, 800_000, 313, 100, 100)


def test_the_huge_config_is_what_the_issue_describes():
    assert 1.9e14 < HUGE_COUNT < 2.1e14


def test_a_2e14_parameter_zoo_llama_config_fails_validation(zoo_registry):
    with pytest.raises(ConfigError) as e:
        validate_config(dict(HUGE), "huge/config.json")
    assert str(e.value).startswith(f"huge/config.json::$: this config describes a model of {HUGE_COUNT:,} parameters (200.")
    assert "ZOO_MAX_PARAMETERS" in e.value.hint


def test_zoo_validate_refuses_it_with_a_clear_error(zoo_registry, tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(HUGE))
    assert main(["validate", str(path)]) != 0
    err = capsys.readouterr().err
    assert f"describes a model of {HUGE_COUNT:,} parameters" in err and "zoo refuses more than 800,000,000,000" in err
    assert "Traceback" not in err


def test_the_limit_is_the_environment_variable(zoo_registry, monkeypatch):
    count = llama_parameters(64, 64, 96, 2, 4, 2)
    monkeypatch.setenv("ZOO_MAX_PARAMETERS", str(count))
    validate_config(dict(TINY))
    monkeypatch.setenv("ZOO_MAX_PARAMETERS", str(count - 1))
    with pytest.raises(ConfigError, match=f"describes a model of {count:,} parameters"):
        validate_config(dict(TINY))
    tied = llama_parameters(64, 64, 96, 2, 4, 2, tied=True)
    monkeypatch.setenv("ZOO_MAX_PARAMETERS", str(tied))
    validate_config(dict(TINY, tie_word_embeddings=True))  # a tied head is counted once


def test_a_plugin_that_counts_itself_is_not_built(zoo_empty_registry):
    """HunYuan's normalize calls check_size: the model target is never imported, so it may not even exist."""
    from loading_fixtures import TINY as HUNYUAN_TINY

    def register_architectures(register):
        register("hunyuan", model="no_such_module_zoo:Model", config_schema="zoo_hunyuan:schemas/hunyuan.config.schema.json",
                 normalize="zoo_hunyuan.config:normalize")

    zoo_empty_registry.register(types.SimpleNamespace(register_architectures=hookimpl(register_architectures)), name="counts")
    arch, _ = validate_config(dict(HUNYUAN_TINY))
    assert arch.provider == "counts"


def test_a_registered_parameter_count_function_is_used(zoo_registry, monkeypatch):
    arch = types.SimpleNamespace(name="zoo_llama", provider="zoo-llama", builtin=False, model="no_such_module_zoo:Model",
                                 parameter_count="test_parameter_guard:_count_from_keys")
    check_parameters(arch, {"n": 10})
    with pytest.raises(ConfigError, match=r"config\.json::\$: this config describes a model of 10,000,000,000,000 parameters"):
        check_parameters(arch, {"n": 10**13})


def _count_from_keys(config):
    return config["n"]


def test_a_model_that_cannot_be_built_is_left_to_the_build_stage(zoo_empty_registry, tmp_path):
    """Counting never turns a broken model into a different error: the loader builds it and names the plugin."""
    from zoo_registry import load_model
    
    def register_architectures(register):
        register("zoo_llama", model="test_parameter_guard:_crashes", config_schema="zoo_llama:schemas/zoo_llama.config.schema.json",
                 normalize="zoo_llama.config:normalize")

    zoo_empty_registry.register(types.SimpleNamespace(register_architectures=hookimpl(register_architectures)), name="crashy")
    validate_config(dict(TINY))
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    mx.save_safetensors(str(tmp_path / "model.safetensors"), {"model.norm.weight": mx.ones((64,))})
    with pytest.raises(PluginError, match=r"plugin 'crashy'.*ZeroDivisionError"):
        load_model(tmp_path)


def _crashes(config):
    return 1 // 0
