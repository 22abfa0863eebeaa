"""Rule files: validation messages, the shipped HunYuan rules, and the engine's semantics."""

import subprocess
import sys
import textwrap
from pathlib import Path

import mlx.core as mx
import pytest

from zoo_registry.errors import CheckpointError, ConfigError, SchemaError
from zoo_registry.registry import Named, Registry
from zoo_registry.sanitize import Op, engine
from zoo_registry.sanitize.rules import load_rules, parse_rules
from zoo_registry.sanitize.tensors import SHAPES, Spec

RULES_DIR = Path(__file__).resolve().parent.parent / "plugin" / "zoo_hunyuan" / "rules"


class Double(Op):
    """A plugin op for the tests: doubles a tensor; its inverse halves it."""

    name = "double"
    params = ("factor",)

    def __init__(self, factor=2):
        super().__init__(factor=factor)
        self.factor = factor

    def forward(self, xp, inputs, *, suffix=None):
        return [x * self.factor if not isinstance(x, Spec) else x for x in inputs]


@pytest.fixture(scope="module")
def registry():
    reg = Registry.discover()
    reg.ops["double"] = Named("sanitize op", "double", "test_sanitize_rules:Double", "tests")
    return reg


def rules(text, registry=None, file="r.yaml"):
    import yaml

    return parse_rules(yaml.safe_load(textwrap.dedent(text)), file, registry)


@pytest.mark.parametrize("path", sorted(RULES_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_rule_files_validate(path, registry):
    ruleset = load_rules(path, registry)  # the plugin's own ops (split_grouped_qkv, ...) come from the registry
    assert len(ruleset) >= 2 and all(r.description for r in ruleset)


def test_schema_describes_every_property():
    import json

    schema = json.loads((RULES_DIR.parent.parent.parent / "schemas" / "sanitize-rules.schema.json").read_text())

    def walk(node, where):
        if isinstance(node, dict):
            for key, sub in (node.get("properties") or {}).items():
                assert "description" in sub or "$ref" in sub, f"{where}.{key} has no description"
                walk(sub, f"{where}.{key}")
            for key in ("$defs", "items", "additionalProperties"):
                if isinstance(node.get(key), dict):
                    for k, sub in (node[key].items() if key == "$defs" else [(key, node[key])]):
                        walk(sub, f"{where}.{k}")

    walk(schema, "$")


@pytest.mark.parametrize("text,message", [
    ("rules: [{op: rename, from: a, to: b, axis: 1}]", "r.yaml::$.rules[0].axis: op 'rename' does not take 'axis'"),
    ("rules: [{op: renam, from: a, to: b}]", "r.yaml::$.rules[0].op: unknown sanitize op 'renam' (did you mean 'rename'?)"),
    ("rules: [{op: rename, from: 'a.{layer}', to: 'b.{expert}'}]", "r.yaml::$.rules[0].to: placeholder(s) {expert} do not appear in `from`"),
    ("rules: [{op: rename, from: 'a.{layer}', to: b}]", "r.yaml::$.rules[0].to: placeholder(s) {layer} of `from` are missing from `to`"),
    ("rules: [{op: stack, from: 'a.{e}', to: b}]", "r.yaml::$.rules[0].over: required key is missing for stack"),
    ("rules: [{op: split, from: a, to: [b]}]", "r.yaml::$.rules[0].to: op 'split' produces 2 or more target(s), got 1"),
    ("rules: [{op: rename, match: 'a(', to: b}]", "r.yaml::$.rules[0].match: invalid regular expression"),
    ("rules: [{op: rename, from: a, too: b}]", "r.yaml::$.rules[0].too: unknown key (did you mean 'to'?)"),
    ("rules: [{op: stack, from: 'a.{e}', to: b, over: e, count: num_experts}]", "r.yaml::$.rules[0].count"),
    ("rules: [{op: split, from: a, to: [b, c], sizes: [1, 2, 3]}]", "r.yaml::$.rules[0].sizes: 3 sizes for 2 targets"),
])
def test_rule_errors_name_file_and_key(text, message):
    with pytest.raises(SchemaError) as e:
        rules(text)
    assert any(line.startswith(message) for line in e.value.errors), e.value.errors


def test_zoo_validate_on_rule_files_imports_no_mlx(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {op: drop, from: 'x.{i}', to: y}\n")
    code = textwrap.dedent(f"""
        import sys
        from zoo_registry.cli.main import main
        rc_ok = main(["validate", {str(RULES_DIR / 'hunyuan.yaml')!r}])
        rc_bad = main(["validate", {str(bad)!r}])
        print(rc_ok, rc_bad, any(m == "mlx" or m.startswith("mlx.") for m in sys.modules))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "0 1 False", proc.stdout + proc.stderr
    assert f"{bad}::$.rules[0].to: op 'drop' produces 0 target(s), got 1" in proc.stderr


def test_absent_sources_do_nothing_and_layout_is_idempotent(registry):
    rs = load_rules(RULES_DIR / "hunyuan.yaml", registry)
    tensors = {"model.layers.0.mlp.switch_mlp.up_proj.weight": Spec((4, 8, 16), "float32"), "model.norm.weight": Spec((16,), "float32")}
    before = dict(tensors)
    result = engine.apply(rs, tensors, {"num_experts": 4, "tie_word_embeddings": True, "num_attention_heads": 4, "num_key_value_heads": 2}, xp=SHAPES)
    assert result.tensors == before and not result.applied and not result.notes


def test_incomplete_expert_group_is_left_alone_with_a_note(registry):
    rs = rules("""
        rules:
          - {name: stack-experts, op: stack, from: 'l.{layer}.experts.{expert}.w', to: 'l.{layer}.switch.w', over: expert, count: config.num_experts}
    """, registry)
    tensors = {f"l.{l}.experts.{e}.w": Spec((2, 3), "float32") for l in range(3) for e in range(4) if not (l == 1 and e == 2)}
    result = engine.apply(rs, tensors, {"num_experts": 4}, xp=SHAPES)
    assert result.tensors["l.0.switch.w"] == Spec((4, 2, 3), "float32")
    assert "l.1.switch.w" not in result.tensors and "l.1.experts.0.w" in result.tensors
    assert result.notes == ["rule 'stack-experts': l.1.experts.{expert}.w: missing expert 2 (expected 4); left as is"]


def test_when_condition_regex_rename_and_plugin_op(registry):
    rs = rules("""
        rules:
          - {op: drop, from: lm_head.weight, when: {tie_word_embeddings: true}}
          - {op: rename, match: 'transformer\\.h\\.(?P<i>\\d+)\\.attn\\.w', to: 'model.layers.{i}.attn.weight'}
          - {op: double, from: 'x.{i}', to: 'y.{i}', params: {factor: config.factor}}
    """, registry)
    t = {"lm_head.weight": mx.ones((2,)), "transformer.h.3.attn.w": mx.ones((2,)), "x.0": mx.ones((2,))}
    out = engine.apply(rs, dict(t), {"tie_word_embeddings": False, "factor": 3}, registry=registry)
    assert sorted(out.tensors) == ["lm_head.weight", "model.layers.3.attn.weight", "y.0"]
    assert out.tensors["y.0"].tolist() == [3.0, 3.0]
    out = engine.apply(rs, dict(t), {"tie_word_embeddings": True, "factor": 3}, registry=registry)
    assert "lm_head.weight" not in out.tensors


def test_mixed_layouts_are_an_error(registry):
    rs = load_rules(RULES_DIR / "hunyuan.yaml", registry)
    t = {f"model.layers.0.mlp.experts.{e}.up_proj.weight": mx.ones((2, 3)) for e in range(2)}
    t["model.layers.0.mlp.switch_mlp.up_proj.weight"] = mx.ones((2, 2, 3))
    with pytest.raises(CheckpointError, match="would overwrite tensor model.layers.0.mlp.switch_mlp.up_proj.weight"):
        engine.apply(rs, t, {"num_experts": 2}, registry=registry)


def test_missing_config_key_for_count(registry):
    rs = rules("rules: [{op: stack, from: 'e.{x}', to: s, over: x, count: config.num_experts}]", registry)
    with pytest.raises(ConfigError, match=r"r.yaml::\$.rules\[0\].count: rule 'stack#0' reads config key 'num_experts'"):
        engine.apply(rs, {"e.0": mx.ones((1,))}, {}, registry=registry)


def test_op_failure_names_rule_and_tensor(registry):
    rs = rules("rules: [{name: halves, op: split, from: a, to: [b, c]}]", registry)
    with pytest.raises(CheckpointError, match=r"rule 'halves' \(split\) cannot transform a: axis 0 of size 3 does not split into 2 equal parts"):
        engine.apply(rs, {"a": mx.ones((3,))}, {}, registry=registry)


def test_invert_restores_the_per_expert_layout(registry):
    rs = load_rules(RULES_DIR / "hunyuan.yaml", registry)
    cfg = {"num_experts": [3, 3], "tie_word_embeddings": True, "num_attention_heads": 4, "num_key_value_heads": 2}
    original = {}
    for layer in range(2):
        for e in range(3):
            for proj in ("gate_proj", "up_proj", "down_proj"):
                for kind, shape in (("weight", (4, 2)), ("scales", (4, 1)), ("biases", (4, 1))):
                    original[f"model.layers.{layer}.mlp.experts.{e}.{proj}.{kind}"] = mx.random.normal(shape)
    loaded = engine.apply(rs, dict(original), cfg, registry=registry).tensors
    assert sorted(loaded)[0] == "model.layers.0.mlp.switch_mlp.down_proj.biases" and len(loaded) == 2 * 3 * 3
    back = engine.invert(rs, dict(loaded), cfg, registry=registry).tensors
    assert sorted(back) == sorted(original)
    assert all(bool(mx.array_equal(back[k], original[k])) for k in original)
