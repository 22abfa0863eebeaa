"""The keys every checkpoint may carry belong to zoo (issue 14, item 1).

An outside plugin is written here as its author would: a package on ``sys.path`` with its own
schema, reusing zoo-llama's model and ``normalize``. A schema that extends zoo's base declares only
its own fields; a schema written to the older guide (``additionalProperties: false``, no
``quantization``) still loads what ``zoo convert -q`` writes; a key the plugin declares itself keeps
the plugin's definition.
"""

import itertools
import json
import types

import mlx.core as mx
import pytest
from mlx.utils import tree_flatten

from zoo_registry import ConfigError, hookimpl, load_model
from zoo_registry.configs import validate_config
from zoo_registry.convert import convert
from zoo_registry.schema import CHECKPOINT_SCHEMA_ID, checkpoint_schema, errors_for
from zoo_registry.testing import tiny_checkpoint

TINY = {"model_type": "outside_llama", "vocab_size": 64, "hidden_size": 64, "intermediate_size": 96,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5}
OWN = {  # the fields of the architecture itself
    "model_type": {"description": "architecture", "const": "outside_llama"},
    **{k: {"description": k, "type": "integer", "minimum": 1}
       for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")},
    "rms_norm_eps": {"description": "RMSNorm epsilon", "type": "number", "exclusiveMinimum": 0},
    "tie_word_embeddings": {"description": "tied head", "type": "boolean"},
}
NEW_STYLE = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": CHECKPOINT_SCHEMA_ID,
             "unevaluatedProperties": False, "type": "object", "properties": OWN}
OLD_STYLE = {"$schema": "https://json-schema.org/draft/2020-12/schema", "additionalProperties": False,
             "type": "object", "properties": OWN}
CHECKPOINT_KEYS = {"architectures": ["LlamaForCausalLM"], "transformers_version": "4.46.0", "torch_dtype": "bfloat16",
                   "auto_map": {"AutoConfig": "configuration_x.XConfig"}, "bos_token_id": 1, "eos_token_id": [2, 3],
                   "pad_token_id": None, "use_cache": True, "_name_or_path": "someone/model",
                   "quantization": {"group_size": 64, "bits": 4}, "quantization_config": {"group_size": 64, "bits": 4}}


_PACKAGES = itertools.count()


@pytest.fixture
def outside(tmp_path, monkeypatch, zoo_registry):
    """Install the outside plugin with a given schema; returns a function(schema) -> registry."""

    def install(schema):
        name = f"outside_plugin_{next(_PACKAGES)}"  # schemas are cached per reference: a new package per test
        package = tmp_path / name
        (package / "schemas").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "schemas" / "outside.config.schema.json").write_text(json.dumps(schema))
        monkeypatch.syspath_prepend(str(tmp_path))

        def register_architectures(register):
            register("outside_llama", model="zoo_llama.model:Model", config_schema=f"{name}:schemas/outside.config.schema.json",
                     rules="zoo_llama:rules/zoo_llama.yaml", normalize="zoo_llama.config:normalize")

        zoo_registry.register(types.SimpleNamespace(register_architectures=hookimpl(register_architectures)), name="outside")
        return zoo_registry

    return install


def test_the_base_schema_declares_what_every_checkpoint_carries():
    base = checkpoint_schema()
    assert base["$id"] == CHECKPOINT_SCHEMA_ID
    for key in ("quantization", "quantization_config", "torch_dtype", "dtype", "architectures", "transformers_version",
                "auto_map", "bos_token_id", "eos_token_id", "pad_token_id"):
        assert base["properties"][key]["description"], key
    assert errors_for(CHECKPOINT_KEYS, base) == []


@pytest.mark.parametrize("style", ["new", "old"])
def test_checkpoint_keys_validate_with_either_style(outside, style):
    outside(NEW_STYLE if style == "new" else OLD_STYLE)
    arch, cfg = validate_config(dict(TINY, **CHECKPOINT_KEYS))
    assert arch.provider == "outside" and cfg["quantization"] == {"group_size": 64, "bits": 4}


@pytest.mark.parametrize("style", ["new", "old"])
def test_a_typo_is_still_an_error_with_did_you_mean(outside, style):
    outside(NEW_STYLE if style == "new" else OLD_STYLE)
    with pytest.raises(ConfigError, match=r"config\.json::\$\.rms_norm_epz: unknown key \(did you mean 'rms_norm_eps'\?\)"):
        validate_config(dict(TINY, rms_norm_epz=1e-5))


@pytest.mark.parametrize("style", ["new", "old"])
def test_the_base_keys_are_type_checked(outside, style):
    outside(NEW_STYLE if style == "new" else OLD_STYLE)
    with pytest.raises(ConfigError, match=r"\$\.quantization\.bits: expected integer but got string '4'"):
        validate_config(dict(TINY, quantization={"group_size": 64, "bits": "4"}))
    with pytest.raises(ConfigError, match=r"\$\.architectures"):
        validate_config(dict(TINY, architectures="LlamaForCausalLM"))


def test_a_key_the_old_schema_declares_keeps_its_definition(outside):
    schema = json.loads(json.dumps(OLD_STYLE))
    schema["properties"]["torch_dtype"] = {"description": "only float32 checkpoints", "enum": ["float32"]}
    outside(schema)
    validate_config(dict(TINY, torch_dtype="float32"))
    with pytest.raises(ConfigError, match=r"\$\.torch_dtype: expected one of 'float32' but got 'bfloat16'"):
        validate_config(dict(TINY, torch_dtype="bfloat16"))


@pytest.mark.parametrize("style", ["new", "old"])
def test_zoo_convert_q_output_loads(outside, tmp_path, style):
    """The outside author's report: a plugin written to the old guide could not load `zoo convert -q` output."""
    registry = outside(NEW_STYLE if style == "new" else OLD_STYLE)
    ckpt = tiny_checkpoint(tmp_path / "src", TINY, registry=registry)
    convert(ckpt.path, tmp_path / "q4", quantize=4, group_size=32, registry=registry)
    written = json.loads((tmp_path / "q4" / "config.json").read_text())
    assert written["quantization"]["bits"] == 4 and "quantization" not in OWN
    model, info = load_model(tmp_path / "q4", return_info=True, registry=registry)
    assert info.provider == "outside" and info.quantization["bits"] == 4
    params = dict(tree_flatten(model.parameters()))
    assert params["model.layers.0.mlp.up_proj.weight"].dtype == mx.uint32  # packed 4-bit weights


def test_a_schema_with_an_unknown_ref_is_the_plugins_error(outside):
    from zoo_registry import PluginError

    outside(dict(NEW_STYLE, **{"$ref": "https://zoo.invalid/schemas/no-such.schema.json"}))
    with pytest.raises(PluginError, match=r"plugin 'outside': config_schema"):
        validate_config(dict(TINY))
