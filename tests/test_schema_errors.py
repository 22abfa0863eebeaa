"""Schema error messages: path, allowed values, best branch of oneOf, did-you-mean."""

import pytest

from zoo_registry.errors import ConfigError, SchemaError
from zoo_registry.files import read_yaml
from zoo_registry.schema import errors_for, validate

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "rope_scaling": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["type"],
                    "properties": {"type": {"enum": ["dynamic", "linear"]}, "alpha": {"type": "number", "exclusiveMinimum": 0}},
                },
            ]
        },
        "layers": {"type": "array", "items": {"type": "integer", "minimum": 1}},
        "hidden_size": {"type": "integer"},
    },
}


def test_enum_lists_allowed_values_sorted():
    assert errors_for({"rope_scaling": {"type": "yarn"}}, SCHEMA) == ["$.rope_scaling.type: expected one of 'dynamic', 'linear' but got 'yarn'"]


def test_one_of_reports_the_best_matching_branch_not_a_generic_message():
    lines = errors_for({"rope_scaling": {"type": "dynamic", "alpha": -1}}, SCHEMA)
    assert lines == ["$.rope_scaling.alpha: -1 is less than or equal to the minimum of 0"]


def test_unknown_key_suggests_the_closest_name():
    assert errors_for({"hiden_size": 4}, SCHEMA) == ["$.hiden_size: unknown key (did you mean 'hidden_size'?)"]


def test_array_index_in_path_and_type_message():
    assert errors_for({"layers": [1, "two"]}, SCHEMA) == ["$.layers[1]: expected integer but got string 'two'"]


def test_validate_raises_one_error_listing_every_problem_with_the_file():
    with pytest.raises(SchemaError) as e:
        validate({"hiden_size": 4, "layers": [0]}, SCHEMA, "cfg.json")
    assert e.value.errors == [
        "cfg.json::$.hiden_size: unknown key (did you mean 'hidden_size'?)",
        "cfg.json::$.layers[0]: 0 is less than the minimum of 1",
    ]
    assert isinstance(e.value, ValueError)


def test_yaml_alias_bomb_is_refused(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghijklm":  # 12 levels x 9 aliases: 9**12 leaves when traversed
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="more than 100 YAML aliases"):
        read_yaml(bomb)


def test_yaml_python_tags_are_not_executed(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("x: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match=r"evil.yaml:1:4: invalid YAML"):
        read_yaml(evil)
