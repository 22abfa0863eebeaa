"""The load report: exact rows for a broken checkpoint, compressed ranges, explain lines."""

import mlx.core as mx
import pytest

from loading_fixtures import TINY, per_expert, reference_weights, write_checkpoint
from zoo_registry.errors import WeightsMismatchError
from zoo_registry.loading import load_model, plan
from zoo_registry.sanitize.report import compare, compress_names, format_indices

E = TINY["num_experts"]


@pytest.mark.parametrize("values,text", [
    ([3], "3"), ([0, 1, 2, 3], "{0...3}"), ([0, 1], "{0,1}"), ([0, 2, 3, 4, 7], "{0,2...4,7}"),
])
def test_format_indices(values, text):
    assert format_indices(values) == text


def test_compress_names_cartesian_and_ragged():
    names = [f"model.layers.{l}.mlp.experts.{e}.up_proj.weight" for l in range(32) for e in range(64)]
    assert compress_names(names) == ["model.layers.{0...31}.mlp.experts.{0...63}.up_proj.weight"]
    ragged = [f"l.{l}.e.{e}" for l in range(4) for e in range(4 if l < 2 else 2)]
    assert compress_names(ragged) == ["l.{0,1}.e.{0...3}", "l.{2,3}.e.{0,1}"]


@pytest.fixture(scope="module")
def ref():
    return reference_weights(TINY, seed=7)


def test_one_extra_one_missing_one_wrong_shape_gives_exactly_three_rows(tmp_path, ref):
    tensors = per_expert(ref, E)
    tensors["model.layers.0.self_attn.extra.weight"] = mx.zeros((3,))
    del tensors["model.layers.1.self_attn.o_proj.weight"]
    tensors["model.norm.weight"] = mx.zeros((TINY["hidden_size"] + 1,))
    folder = write_checkpoint(tmp_path / "broken", tensors, TINY)
    with pytest.raises(WeightsMismatchError) as e:
        load_model(folder)
    report = e.value.report
    assert report.rows() == [
        ("MISSING", "model.layers.1.self_attn.o_proj.weight", "expected float32[64, 64]"),
        ("UNEXPECTED", "model.layers.0.self_attn.extra.weight", "got float32[3]"),
        ("MISMATCHED", "model.norm.weight", "expected float32[64], got float32[65]"),
    ]
    assert str(e.value).splitlines()[0] == f"checkpoint {folder} does not fit the hunyuan model (1 missing, 1 unexpected, 1 mismatched)"
    assert len(str(e.value).splitlines()) == 4
    assert e.value.hint and "strict=False" in e.value.hint


def test_strict_false_loads_what_fits_and_warns(tmp_path, ref):
    tensors = per_expert(ref, E)
    tensors["model.layers.0.self_attn.extra.weight"] = mx.zeros((3,))
    folder = write_checkpoint(tmp_path / "extra", tensors, TINY)
    with pytest.warns(UserWarning, match="UNEXPECTED"):
        model, info = load_model(folder, strict=False, return_info=True)
    assert not info.report.ok and len(info.report.loaded) == len(ref)
    assert bool(mx.array_equal(model.model.norm.weight, ref["model.norm.weight"]))


def test_64_expert_32_layer_mismatch_fits_in_a_few_lines(tmp_path):
    """Per-expert checkpoint missing expert 63 everywhere: ~6000 tensors, a handful of lines."""
    config = dict(TINY, num_hidden_layers=32, num_experts=64, hidden_size=16, intermediate_size=8,
                  num_attention_heads=2, num_key_value_heads=1, vocab_size=16)
    from loading_fixtures import build_zoo
    from mlx.utils import tree_flatten

    model = build_zoo(config)
    tensors = per_expert({k: mx.zeros(v.shape) for k, v in tree_flatten(model.parameters())}, 64)
    tensors = {k: v for k, v in tensors.items() if ".experts.63." not in k}
    assert len(tensors) > 6000
    folder = write_checkpoint(tmp_path / "big", tensors, config)
    p = plan(folder)  # headers only
    text = p.report.message()
    assert len(text.splitlines()) <= 10, text
    assert "  MISSING     model.layers.{0...31}.mlp.switch_mlp.up_proj.weight" in text
    assert "model.layers.{0...31}.mlp.experts.{0...62}.up_proj.weight" in text
    assert "note: rule 'stack-experts': model.layers.{0...31}.mlp.experts.{expert}.up_proj.weight: missing expert 63 (expected 64); left as is" in text


def test_explain_names_the_rule_behind_each_parameter(tmp_path, ref):
    folder = write_checkpoint(tmp_path / "hf", per_expert(ref, E), TINY)
    _, info = load_model(folder, return_info=True)
    lines = info.report.explain()
    assert ("model.layers.{0,1}.mlp.switch_mlp.up_proj.weight  <= stack-experts (stack) <= "
            "model.layers.{0,1}.mlp.experts.{0...3}.up_proj.weight") in lines
    assert "model.norm.weight  = as stored" in lines
    assert len(lines) < 25


def test_dtype_rules_floating_may_differ_packed_may_not():
    ok = compare({"w": ((4, 4), "float32")}, {"w": ((4, 4), "bfloat16")})
    bad = compare({"w": ((4, 4), "float32")}, {"w": ((4, 4), "uint32")})
    assert ok.ok and bad.rows() == [("MISMATCHED", "w", "expected float32[4, 4], got uint32[4, 4]")]
