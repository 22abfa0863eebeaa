"""HunYuan config schemas and normalisation: every shipped example, every documented error."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zoo_registry.configs import validate_config
from zoo_registry.errors import ConfigError
from zoo_registry.schema import load_schema

from zoo_hunyuan.config import normalize

SCHEMAS = Path(__file__).resolve().parent.parent / "plugin" / "zoo_hunyuan" / "schemas"
VALID = sorted((SCHEMAS / "examples").glob("*.json"))
INVALID = sorted((SCHEMAS / "examples" / "invalid").glob("*.json"))


def read_example(path):
    data = json.loads(path.read_text())
    data.pop("$comment", None)
    return data


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid_example_validates(path):
    arch, cfg = validate_config(read_example(path), str(path))
    assert read_example(path)["model_type"] in (arch.name, *arch.aliases)  # the architecture the file names, not any HunYuan
    assert normalize(cfg) == cfg  # idempotent
    assert "rope_parameters" not in cfg and isinstance(cfg["head_dim"], int)
    assert len(cfg["moe_topk"]) == cfg["num_hidden_layers"]


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_example_is_rejected_naming_the_key(path):
    case = json.loads(path.read_text())
    with pytest.raises(ConfigError) as err:
        validate_config(case["config"], "config.json")
    assert f"config.json::{case['error_path']}" in str(err.value)
    assert case["error_contains"] in str(err.value)


@pytest.mark.parametrize("name", ["hunyuan", "hunyuan_v1_dense"])
def test_every_schema_property_is_described(name):
    schema = load_schema(str(SCHEMAS / f"{name}.config.schema.json"))
    assert schema["additionalProperties"] is False

    def walk(props, where):
        for key, sub in props.items():
            assert len(sub.get("description", "")) > 15, f"{where}.{key} lacks a description"

    walk(schema["properties"], "$")
    walk(schema["patternProperties"], "$(pattern)")
    for name_, d in schema["$defs"].items():
        walk(d.get("properties", {}), f"$defs.{name_}")
    for example in schema["examples"]:
        validate_config(example, "schema example")


def test_schema_examples_match_example_files():
    schema = load_schema(str(SCHEMAS / "hunyuan.config.schema.json"))
    assert read_example(SCHEMAS / "examples" / "hunyuan-a13b-instruct.json") in schema["examples"]


TINY = {"model_type": "hunyuan", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 16, "num_hidden_layers": 3,
        "num_attention_heads": 4, "num_key_value_heads": 2}


def test_rope_parameters_fold_into_rope_scaling():
    cfg = normalize({**TINY, "rope_parameters": {"rope_theta": 5000.0, "rope_type": "dynamic", "alpha": 1000.0, "factor": 1.0}})
    assert cfg["rope_theta"] == 5000.0
    assert cfg["rope_scaling"] == {"alpha": 1000.0, "factor": 1.0, "type": "dynamic"}
    assert "rope_parameters" not in cfg


@pytest.mark.parametrize(
    "scaling, expected",
    [
        (None, None),
        ({"type": "default"}, None),
        ({"rope_type": "linear", "factor": 2.0}, {"type": "linear", "factor": 2.0}),
        ({"rope_type": "ntk_alpha", "alpha": 10.0}, {"type": "dynamic", "alpha": 10.0}),
        ({"type": "dynamic", "rope_type": "dynamic", "alpha": 10.0, "factor": 1.0}, {"type": "dynamic", "alpha": 10.0, "factor": 1.0}),
    ],
)
def test_rope_scaling_forms(scaling, expected):
    assert normalize({**TINY, "rope_scaling": scaling, "rope_theta": 1e4})["rope_scaling"] == expected


def test_dynamic_without_alpha_needs_max_positions():
    with pytest.raises(ConfigError, match=r"^\$\.max_position_embeddings: "):
        normalize({**TINY, "rope_scaling": {"type": "dynamic", "factor": 2.0}})


@pytest.mark.parametrize(
    "extra, head_dim",
    [({}, 8), ({"attention_head_dim": 16}, 16), ({"head_dim": 12}, 12), ({"head_dim": 12, "attention_head_dim": 12}, 12)],
)
def test_head_dim_resolution_order(extra, head_dim):
    assert normalize({**TINY, **extra})["head_dim"] == head_dim


def test_per_layer_lists_expand_and_default():
    cfg = normalize({**TINY, "num_experts": 4, "moe_topk": [1, 2, 3], "num_shared_expert": 0})
    assert cfg["num_experts"] == [4, 4, 4] and cfg["moe_topk"] == [1, 2, 3] and cfg["num_shared_expert"] == [0, 0, 0]
    assert cfg["moe_intermediate_size"] == [16, 16, 16]


def test_topk_beyond_experts_names_the_layer():
    with pytest.raises(ConfigError, match=r"^\$\.moe_topk\[1\]: 5 experts per token but num_experts is 4"):
        normalize({**TINY, "num_experts": 4, "moe_topk": [2, 5, 2]})


def test_tie_defaults_per_model_type():
    # untied for every model type: Tencent's HunYuanConfig and transformers' HunYuan*V1Config all
    # default tie_word_embeddings to False (test_hunyuan_defaults.py covers every other default)
    assert normalize(TINY)["tie_word_embeddings"] is False
    assert normalize({**TINY, "model_type": "hunyuan_v1_moe"})["tie_word_embeddings"] is False
    assert normalize({**TINY, "model_type": "hunyuan_v1_dense"})["tie_word_embeddings"] is False


def test_normalize_does_not_import_mlx():
    code = "import sys, zoo_hunyuan.config as c; c.normalize(%r); print('mlx' in sys.modules)" % (TINY,)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
