"""Bad configs, cards and rule files: each is refused with one exact message naming file and key.

One test per case of issue 8 ("Cards and configs"); cases already pinned elsewhere are listed in
docs/reliability.md with their test names instead of being repeated here. Messages are compared
in full, so a change of wording is a deliberate change of this file.
"""

import json
import os

import pytest

from zoo_registry.cards import Catalogue, read_card
from zoo_registry.configs import MAX_PARAMETERS, check_size, validate_config
from zoo_registry.errors import CheckpointError, CheckpointNotFoundError, ConfigError, SchemaError, UnknownNameError
from zoo_registry.files import MAX_TEXT_BYTES, read_json, read_yaml
from zoo_registry.sanitize.rules import load_rules

from zoo_hunyuan.config import parameter_count

BASE = {
    "model_type": "hunyuan",
    "vocab_size": 64,
    "hidden_size": 64,
    "num_hidden_layers": 4,
    "intermediate_size": 32,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_experts": 4,
    "moe_topk": 1,
    "num_shared_expert": 1,
    "use_mixed_mlp_moe": True,
    "use_qk_norm": True,
    "tie_word_embeddings": True,
    "use_cla": True,
    "cla_share_factor": 2,
    "rope_scaling": {"alpha": 1000.0, "factor": 1.0, "type": "dynamic"},
}

# (case id, changes to BASE (None deletes the key), error class, exact message, exact hint or None)
CASES = [
    ("wrong-type", {"hidden_size": "64"}, SchemaError, "config.json::$.hidden_size: expected integer but got string '64'", None),
    ("unknown-key", {"cla_share_factr": 2}, SchemaError, "config.json::$.cla_share_factr: unknown key (did you mean 'cla_share_factor'?)", None),
    ("missing-key", {"vocab_size": None}, SchemaError, "config.json::$.vocab_size: required key is missing", None),
    ("list-length", {"moe_topk": [1, 1, 1]}, ConfigError, "config.json::$.moe_topk: has 3 entries but num_hidden_layers is 4",
     "give one value per layer, or a single integer for all layers"),
    ("heads-not-divisible", {"num_key_value_heads": 3}, ConfigError,
     "config.json::$.num_attention_heads: 4 is not divisible by num_key_value_heads 3", "each key/value head must serve a whole number of query heads"),
    ("cla-zero", {"cla_share_factor": 0}, SchemaError, "config.json::$.cla_share_factor: 0 is less than the minimum of 1", None),
    ("cla-beyond-layers", {"cla_share_factor": 5}, ConfigError,
     "config.json::$.cla_share_factor: expected an integer in [1, num_hidden_layers=4] but got 5",
     "with use_cla, layer i computes its own K/V iff i % cla_share_factor == 0"),
    ("topk-beyond-experts", {"moe_topk": 5}, ConfigError, "config.json::$.moe_topk: 5 experts per token but num_experts is 4",
     "moe_topk must be <= num_experts"),
    ("negative-size", {"intermediate_size": -1}, SchemaError, "config.json::$.intermediate_size: -1 is less than the minimum of 1", None),
    ("absurd-width", {"hidden_size": 10**6}, SchemaError, "config.json::$.hidden_size: 1000000 is greater than the maximum of 65536", None),
    ("absurd-layers", {"num_hidden_layers": 100_000}, SchemaError,
     "config.json::$.num_hidden_layers: 100000 is greater than the maximum of 1024", None),
    ("absurd-vocab", {"vocab_size": 10**9}, SchemaError, "config.json::$.vocab_size: 1000000000 is greater than the maximum of 2097152", None),
    ("alpha-negative", {"rope_scaling": {"alpha": -1.0, "type": "dynamic"}}, SchemaError,
     "config.json::$.rope_scaling.alpha: -1.0 is less than the minimum of 0", None),
    ("alpha-zero-ntk", {"rope_scaling": {"alpha": 0, "type": "ntk_alpha"}}, ConfigError,
     "config.json::$.rope_scaling.alpha: RoPE type 'ntk_alpha' needs an alpha > 0, got 0", None),
    ("rope-type-unknown", {"rope_scaling": {"type": "yarn", "factor": 4.0}}, ConfigError,
     "config.json::$.rope_scaling.type: unsupported RoPE type 'yarn'; supported: default, linear, dynamic, ntk_alpha",
     "HunYuan checkpoints use type 'dynamic' with alpha 1000 (NTK-alpha RoPE)"),
    ("nan", {"rope_theta": float("nan")}, ConfigError, "config.json::$.rope_theta: nan is not a finite number",
     "JSON has no NaN or Infinity; write a real number"),
    ("inf-nested", {"rope_scaling": {"alpha": float("inf"), "type": "dynamic"}}, ConfigError,
     "config.json::$.rope_scaling.alpha: inf is not a finite number", "JSON has no NaN or Infinity; write a real number"),
    ("unknown-model-type", {"model_type": "hunyaun"}, UnknownNameError,
     "config.json::$.model_type: no installed plugin serves model_type 'hunyaun' (did you mean 'hunyuan'?)",
     "run `zoo list` to see the architectures installed plugins serve"),
]


def changed(**changes):
    config = json.loads(json.dumps(BASE))
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return config


@pytest.mark.parametrize("case, changes, error, message, hint", CASES, ids=[c[0] for c in CASES])
def test_bad_config_exact_message(case, changes, error, message, hint):
    with pytest.raises(error) as e:
        validate_config(changed(**changes), "config.json")
    assert str(e.value) == message
    assert e.value.hint == hint


def test_base_config_is_valid():
    arch, cfg = validate_config(changed(), "config.json")
    assert arch.name == "hunyuan" and cfg["moe_topk"] == [1, 1, 1, 1]


def test_a_trillion_parameters_is_refused_with_the_computed_size_before_building():
    # Every size is within its schema maximum; together they ask for ~1.1e12 parameters.
    config = changed(hidden_size=16384, intermediate_size=16384, moe_intermediate_size=16384, num_experts=64, num_hidden_layers=22,
                     num_attention_heads=128, num_key_value_heads=8, vocab_size=131072)
    with pytest.raises(ConfigError) as e:
        validate_config(config, "config.json")
    n = 1_165_939_660_288
    assert str(e.value) == (f"config.json::$: this config describes a model of {n:,} parameters (1.17 T); "
                            "zoo refuses more than 800,000,000,000 (800.00 B)")
    assert e.value.hint == ("check hidden_size, intermediate_size, moe_intermediate_size, num_experts, num_hidden_layers and vocab_size "
                            "for a typo; set ZOO_MAX_PARAMETERS to raise the limit if the model is real")


def test_parameter_limit_admits_hunyuan_large_and_can_be_raised(monkeypatch):
    large = json.loads(open(os.path.join(os.path.dirname(__file__), "..", "plugin", "zoo_hunyuan", "schemas", "examples", "hunyuan-large.json")).read())
    large.pop("$comment", None)
    _, cfg = validate_config(large, "hunyuan-large.json")
    assert 388e9 < parameter_count(cfg) < 390e9 < MAX_PARAMETERS  # HunYuan-Large: 389 B (arXiv:2411.02265)
    monkeypatch.setenv("ZOO_MAX_PARAMETERS", "100000000")
    with pytest.raises(ConfigError, match=r"^hunyuan-large.json::\$: this config describes a model of 388,701,405,440 parameters"):
        validate_config(large, "hunyuan-large.json")
    monkeypatch.setenv("ZOO_MAX_PARAMETERS", "lots")
    with pytest.raises(ConfigError) as e:
        check_size(1)
    assert str(e.value) == "ZOO_MAX_PARAMETERS='lots': expected a positive integer such as 1000000000000"


# -- files ---------------------------------------------------------------------------------------


def test_invalid_json_names_line_and_column(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{\n  "model_type": "hunyuan",\n  "vocab_size": 64,,\n}')
    with pytest.raises(ConfigError) as e:
        read_json(path, "config")
    assert str(e.value) == f"{path}:3:20: invalid JSON: Expecting property name enclosed in double quotes"


def test_invalid_yaml_names_line_and_column(tmp_path):
    path = tmp_path / "card.yaml"
    path.write_text("name: x\nsource: {path: [unclosed\n")
    with pytest.raises(ConfigError) as e:
        read_card(path)
    assert str(e.value) == f"{path}:3:1: invalid YAML: expected ',' or ']', but got '<stream end>'"


def test_json_nested_beyond_the_recursion_limit(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError) as e:
        read_json(path, "config")
    assert str(e.value) == f"{path}: invalid JSON: nested too deeply (more levels than Python's recursion limit)"


def test_yaml_nested_beyond_the_recursion_limit(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("rules: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError) as e:
        load_rules(path)
    assert str(e.value) == f"{path}: invalid YAML: nested too deeply (more levels than Python's recursion limit)"


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_number_with_5000_digits(tmp_path, suffix):
    path = tmp_path / f"config{suffix}"
    path.write_text('{"vocab_size": ' + "9" * 5000 + "}")
    reader = read_json if suffix == ".json" else read_yaml
    with pytest.raises(ConfigError) as e:
        reader(path)
    kind = "JSON" if suffix == ".json" else "YAML"
    assert str(e.value) == f"{path}: invalid {kind}: a number has more digits than Python converts (4300); no real config needs such a number"


def test_huge_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "config.json"
    with open(path, "wb") as f:
        f.truncate(MAX_TEXT_BYTES + 1)  # sparse: nothing is written or read
    with pytest.raises(ConfigError) as e:
        read_json(path, "config")
    assert str(e.value) == f"{path}: config is {MAX_TEXT_BYTES + 1} bytes; refusing files over {MAX_TEXT_BYTES} bytes"
    assert e.value.hint == "configs, cards and rule files are a few KB; check that this is the right file"


def test_symlink_loop_and_dangling_link(tmp_path):
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    with pytest.raises(ConfigError) as e:
        read_yaml(loop, "model card")
    assert str(e.value) == f"{loop}: model card is a symbolic link that loops back on itself"
    dangling = tmp_path / "gone.yaml"
    dangling.symlink_to(tmp_path / "nowhere.yaml")
    with pytest.raises(ConfigError) as e:
        read_yaml(dangling, "model card")
    assert str(e.value) == f"{dangling}: model card is a symbolic link to '{tmp_path / 'nowhere.yaml'}', which does not exist"
    with pytest.raises(CheckpointNotFoundError) as e:
        read_yaml(tmp_path / "absent.yaml", "model card")
    assert str(e.value) == f"{tmp_path / 'absent.yaml'}: model card not found"


# -- YAML alias bombs, end to end ----------------------------------------------------------------


def alias_bomb(key_line: str) -> str:
    """12 levels x 9 aliases: 9**12 leaves if expanded (a "billion laughs")."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghijklm":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    lines.append(key_line.format(last=prev))
    return "\n".join(lines) + "\n"


def test_alias_bomb_in_a_user_card_is_skipped_with_the_reason(tmp_path, isolated_home, monkeypatch):
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "bomb.yaml").write_text("name: bomb\narchitecture: hunyuan\nsource: {path: x}\n" + alias_bomb("tags: *{last}"))
    monkeypatch.setenv("ZOO_CARDS_PATH", str(cards))
    catalogue = Catalogue.build([])
    assert "bomb" not in catalogue
    assert catalogue.problems == [f"{cards / 'bomb.yaml'}: invalid YAML: more than 100 YAML aliases (line 16); refusing a possible alias bomb"]


def test_alias_bomb_in_a_rule_file(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(alias_bomb("rules: *{last}"))
    with pytest.raises(ConfigError) as e:
        load_rules(path)
    assert str(e.value) == f"{path}: invalid YAML: more than 100 YAML aliases (line 13); refusing a possible alias bomb"


def test_a_few_aliases_are_fine(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - {op: drop, name: a, from: &t model.rotary_emb.inv_freq}\n  - {op: drop, name: b, from: *t}\n")
    assert [r.sources for r in load_rules(path)] == [["model.rotary_emb.inv_freq"]] * 2


def test_user_card_whose_source_path_is_a_symlink_loop(tmp_path, isolated_home, monkeypatch):
    from zoo_registry.cards import materialize
    from zoo_registry.registry import Registry

    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "loop").symlink_to(cards / "loop")
    (cards / "looped.yaml").write_text("name: looped\narchitecture: hunyuan\nsource: {path: loop}\n")
    monkeypatch.setenv("ZOO_CARDS_PATH", str(cards))
    card = Registry.discover().cards().get("looped")
    with pytest.raises(CheckpointNotFoundError) as e:
        materialize(card)
    assert str(e.value) == f"{cards / 'looped.yaml'}::$.source.path: {cards / 'loop'}: checkpoint folder is a symbolic link that loops back on itself"
    assert e.value.hint == "fix source.path in the card"
