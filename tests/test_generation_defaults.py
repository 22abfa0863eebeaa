"""Sampling settings from generation_config.json, as transformers' GenerationConfig applies them."""

from __future__ import annotations

import json

import pytest

from zoo_registry.chat import defaults
from zoo_registry.errors import ConfigError

A13B = {"eos_token_id": [127960, 127967], "pad_token_id": 127961, "do_sample": True, "top_k": 20, "top_p": 0.8,
        "repetition_penalty": 1.05, "temperature": 0.7, "transformers_version": "4.31.0"}  # Tencent's file


def test_checkpoint_values_apply_and_user_values_win_key_by_key():
    s = defaults.resolve(A13B, "gc.json")
    assert (s.temperature, s.top_p, s.top_k, s.repetition_penalty, s.eos_token_ids) == (0.7, 0.8, 20, 1.05, (127960, 127967))
    assert set(s.sources.values()) == {"gc.json", defaults.ZOO} and s.sources["min_p"] == defaults.ZOO
    s = defaults.resolve(A13B, "gc.json", top_k=5, repetition_penalty=1.0)
    assert (s.top_k, s.sources["top_k"], s.repetition_penalty, s.top_p) == (5, "command line", 1.0, 0.8)


def test_without_do_sample_the_checkpoint_is_greedy_as_in_transformers():
    from transformers import GenerationConfig

    for gc in ({"temperature": 0.6, "top_p": 0.9}, {"do_sample": False, "temperature": 0.6}):
        s = defaults.resolve(gc, "gc.json")
        assert s.greedy and s.sources["temperature"].startswith("gc.json: do_sample is")
        assert GenerationConfig(**gc).get_generation_mode().value == "greedy_search"  # the same reading
        assert defaults.resolve(gc, "gc.json", temperature=0.6).temperature == 0.6  # the user may still sample
    assert GenerationConfig(**A13B).get_generation_mode().value == "sample" and not defaults.resolve(A13B).greedy


def test_no_generation_config_means_zoo_defaults():
    s = defaults.resolve(None)
    assert s.greedy and s.eos_token_ids == () and set(s.sources.values()) == {defaults.ZOO}
    assert s.describe() == "sampling: greedy (temperature 0) (zoo default)"


def test_describe_names_sources_and_stop_tokens():
    line = defaults.resolve(A13B, "gc.json", temperature=0.0).describe({127960: "<|eos|>", 127967: "<|extra_5|>"})
    assert line == ("sampling: greedy (temperature 0) (command line); repetition_penalty 1.05 (gc.json); "
                    "stops at 127960 <|eos|>, 127967 <|extra_5|> (the same file)")
    assert defaults.resolve({"eos_token_id": 2}, "gc.json", temperature=0.5).describe() == (
        "sampling: temperature 0.5 (command line); stops at 2 (gc.json)")  # unset filters are not listed


@pytest.mark.parametrize("key, value", [("temperature", -1), ("top_p", 0), ("top_k", 2.5), ("do_sample", "yes"),
                                        ("eos_token_id", [1, "two"]), ("repetition_penalty", True)])
def test_bad_values_name_the_file_and_key(tmp_path, key, value):
    (tmp_path / "generation_config.json").write_text(json.dumps({**A13B, key: value}))
    with pytest.raises(ConfigError, match=rf"generation_config.json::\$\.{key}: must be"):
        defaults.for_checkpoint(tmp_path)


def test_mlx_lm_builds_the_sampler_and_processors():
    s = defaults.resolve(A13B)
    assert callable(s.sampler()) and len(s.logits_processors()) == 1
    assert defaults.resolve({"do_sample": True}).logits_processors() is None


@pytest.mark.parametrize("gc", [{"do_sample": True, "top_p": 0.9}, {"do_sample": True}, {"do_sample": True, "temperature": 0.6},
                                {"do_sample": True, "top_k": 5, "eos_token_id": 2}])
def test_sampling_keys_left_out_take_transformers_global_defaults(gc):
    from transformers import GenerationConfig

    expected = GenerationConfig(**gc)  # what model.generate() uses: unset keys filled from the global defaults
    expected.update(**GenerationConfig._get_default_generation_params(), defaults_only=True)
    assert expected.get_generation_mode().value == "sample"
    s = defaults.resolve(gc, "gc.json")
    assert not s.greedy
    assert (s.temperature, s.top_k, s.top_p) == (expected.temperature, expected.top_k, expected.top_p)
    for key in ("temperature", "top_k", "top_p"):
        assert s.sources[key] == ("gc.json" if key in gc else "transformers' default for what gc.json leaves out")
    assert defaults.resolve(gc, "gc.json", top_k=0).top_k == 0  # the user still wins


def test_describe_names_transformers_defaults_and_leaves_out_no_op_filters():
    assert defaults.resolve({"do_sample": True, "top_p": 0.9}, "gc.json").describe() == (
        "sampling: temperature 1, top_k 50 (transformers' default for what gc.json leaves out); top_p 0.9 (gc.json)")
