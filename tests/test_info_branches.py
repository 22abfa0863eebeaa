"""``zoo info`` documents keys that live inside ``oneOf``/``anyOf`` branches (marked by branch),
``allOf`` parts and local ``$ref``s, not only the top-level ``properties`` (issue 14, item 9)."""

import json

from zoo_registry.cli.info_cmd import schema_fields

SCHEMA = {
    "type": "object",
    "$defs": {"yarn": {"type": "object", "properties": {"beta_fast": {"type": "number", "description": "YaRN beta"}}}},
    "properties": {"model_type": {"const": "toy", "description": "the architecture"}},
    "allOf": [{"properties": {"hidden_size": {"type": "integer", "default": 64, "description": "width"}}}],
    "oneOf": [
        {"properties": {"sliding_window": {"type": "integer", "description": "window"}}},
        {"properties": {"rope_scaling": {"description": "scaling", "anyOf": [{"$ref": "#/$defs/yarn"}, {"type": "null"}]}}},
    ],
}


def test_branch_keys_are_listed_and_marked():
    rows = {(key, branch): (type_, default, desc) for key, type_, default, desc, branch in schema_fields(SCHEMA)}
    assert rows[("model_type", None)] == ("'toy'", "", "the architecture")
    assert rows[("hidden_size", None)] == ("integer", 64, "width")  # allOf always applies: no branch
    assert rows[("sliding_window", "oneOf 1/2")] == ("integer", "", "window")
    assert rows[("rope_scaling", "oneOf 2/2")] == ("object | null", "", "scaling")
    assert rows[("rope_scaling.beta_fast", "oneOf 2/2 > anyOf 1/2")] == ("number", "", "YaRN beta")
    assert len(rows) == 5


def test_zoo_info_shows_hunyuans_rope_scaling_keys(isolated_home, zoo):
    info = json.loads(zoo("info", "hunyuan", "--json", check=0).stdout)
    fields = {f["key"]: f for f in info["fields"]}
    assert fields["rope_scaling"]["branch"] is None
    assert fields["rope_scaling.alpha"]["branch"] == "anyOf 1/2"  # inside anyOf [{$ref: rope_scaling}, null]
    assert "NTK-alpha" in fields["rope_scaling.alpha"]["description"]
    text = zoo("info", "hunyuan", check=0).stdout
    header = next(line for line in text.splitlines() if line.startswith("KEY"))
    assert header.split() == ["KEY", "BRANCH", "TYPE", "DEFAULT", "DESCRIPTION"]
    assert any(line.split()[:2] == ["rope_scaling.alpha", "anyOf"] for line in text.splitlines())
