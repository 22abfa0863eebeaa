"""Tencent's quantized releases: FP8 (e4m3 + weight_scale) and GPTQ (qweight/qzeros/scales/g_idx).

The checkpoints are made from hunyuan-tiny's float weights by ``quant_fixtures`` with the formats'
own definitions (torch's float8_e4m3fn; AutoGPTQ's packing), independent of zoo's code. Each is
checked three ways: exactly against a dequantize-then-run reference (the float model built from
the format's dequantization computed with torch/numpy), within the format's quantization error of
the float model, and, for GPTQ, at the tensor level: MLX's ``dequantize`` of the converted tensors
equals GPTQ's formula bit for bit.
"""

import json

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
import torch

from quant_fixtures import (awq_checkpoint, awq_layer, float_weights, fp8_checkpoint, gptq_checkpoint, gptq_layer,
                            is_quantized_linear, reference_checkpoint, write)
from mlx_lm.models.switch_layers import QuantizedSwitchLinear, SwitchLinear
from zoo_registry.convert import convert
from zoo_registry.errors import ConfigError
from zoo_registry.loading import load_model, plan
from zoo_registry.sanitize.quantized import AWQToMLX, GPTQToMLX, GPTQv2ToMLX, decode_e4m3fn, e4m3fn_table
from zoo_registry.sanitize.tensors import mlx_backend

PROMPT = mx.array([[5, 17, 42, 8, 99, 3, 7, 11, 200, 300]])


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    from zoo_hunyuan.tiny import generate

    return generate(tmp_path_factory.mktemp("float") / "tiny")


@pytest.fixture(scope="module")
def float_logits(src):
    return load_model(src)(PROMPT)


@pytest.fixture(autouse=True)
def mlx_ops_only():
    """Bit-exact comparisons with references computed by MLX's own ops; zoo's CPU kernels agree with
    those within float rounding only (tests/test_kernels.py compares the two paths)."""
    from zoo_registry import kernels

    with kernels.disabled():
        yield


def qnote(report) -> str:
    """The load report's note on the quantized format read (config-default notes may come first)."""
    return next(n for n in report.notes if n.startswith("quantization:"))


def _rel(a, b) -> float:
    return float(mx.sqrt(((a - b) ** 2).sum() / (b ** 2).sum()))


def _noise_control(src, tmp, reference, seed=0) -> float:
    """Logit error of the float model with Gaussian noise of the quantization error's RMS per tensor."""
    rng = np.random.default_rng(seed)
    noisy = {}
    for name, w in float_weights(src).items():
        if is_quantized_linear(name):
            sigma = float(np.sqrt(((reference[name] - w) ** 2).mean()))
            w = w + rng.standard_normal(w.shape).astype(np.float32) * sigma
        noisy[name] = w
    return _rel(load_model(reference_checkpoint(src, tmp / f"noise{seed}", noisy))(PROMPT), load_model(src)(PROMPT))


def _matches_reference_and_converts(model, src, folder, reference, tmp_path):
    """The exactly converted model runs like its dequantize-then-run reference, and plain mlx_lm.load reads its conversion."""
    import mlx_lm

    expected = load_model(reference_checkpoint(src, tmp_path / "ref", reference))
    assert float(mx.abs(model(PROMPT) - expected(PROMPT)).max()) < 1e-4  # quantized_matmul sums in another order
    convert(folder, tmp_path / "out")
    theirs, _ = mlx_lm.load(str(tmp_path / "out"))
    assert bool(mx.array_equal(model(PROMPT), theirs(PROMPT)))


def _linears(model):
    return {n: m for n, m in model.named_modules() if n.split(".")[-1].endswith("_proj")}


# -- FP8 -------------------------------------------------------------------------------------------


def test_e4m3fn_decoding_is_the_format_exactly():
    table = e4m3fn_table()
    ref = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).to(torch.float32).numpy()
    assert np.array_equal(np.isnan(table), np.isnan(ref))
    assert np.flatnonzero(np.isnan(table)).tolist() == [0x7F, 0xFF]  # S.1111.111 only; no infinities
    assert np.isfinite(table[~np.isnan(table)]).all() and np.nanmax(table) == 448.0
    assert np.array_equal(table.view(np.uint32)[~np.isnan(table)], ref.view(np.uint32)[~np.isnan(ref)])  # incl. -0
    raw = mx.arange(256).astype(mx.uint8)
    for native in (True, False):
        got = np.array(decode_e4m3fn(raw, native=native))
        assert np.array_equal(np.isnan(got), np.isnan(ref))
        assert np.array_equal(got.view(np.uint32)[~np.isnan(got)], ref.view(np.uint32)[~np.isnan(ref)])


@pytest.mark.parametrize("per_channel,style", [(False, "fp8"), (True, "compressed-tensors"), (False, "hf_quant_config")],
                         ids=["per-tensor", "per-channel", "hf_quant_config.json"])
def test_fp8_loads_exactly_as_dequantize_then_run(src, float_logits, tmp_path, per_channel, style):
    folder, reference = fp8_checkpoint(src, tmp_path / "fp8", per_channel=per_channel, config_style=style)
    written = json.loads(folder.joinpath("config.json").read_text()).get("quantization_config", {}).get("quant_method")
    assert written == (None if style == "hf_quant_config" else style)
    model, info = load_model(folder, return_info=True)
    expected = load_model(reference_checkpoint(src, tmp_path / "ref", reference))
    assert bool(mx.array_equal(model(PROMPT), expected(PROMPT)))
    note = qnote(info.report)
    assert note.startswith("quantization: FP8") and ("per-channel" if per_channel else "per-tensor") in note
    assert "72 linear layers" in note and "input_scale tensors dropped" in note
    assert info.report.applied["dequantize-fp8-experts"] == 48 and info.report.applied["stack-experts"] == 12
    assert model.model.layers[0].mlp.switch_mlp.gate_proj.weight.dtype == mx.float32  # torch_dtype of the source
    # within the quantization error: no worse than noise of the same RMS per tensor
    assert _rel(model(PROMPT), float_logits) < 2.5 * _noise_control(src, tmp_path, reference)


def test_fp8_weights_are_within_e4m3_rounding(src, tmp_path):
    folder, _ = fp8_checkpoint(src, tmp_path / "fp8", per_channel=True)
    from mlx.utils import tree_flatten

    loaded = dict(tree_flatten(load_model(folder).parameters()))
    w = float_weights(src)["model.layers.1.self_attn.q_proj.weight"]
    got = np.array(loaded["model.layers.1.self_attn.q_proj.weight"])
    s = np.abs(w).max(axis=1, keepdims=True) / 448.0
    # 3 mantissa bits: half an ulp is 2^-4 of the value (normal) or 2^-10·s (subnormal spacing 2^-9·s)
    assert (np.abs(got - w) <= np.maximum(np.abs(w) * 2.0 ** -4, s * 2.0 ** -10) * (1 + 1e-6)).all()


def test_fp8_with_quantize_8_goes_straight_to_mlx_8bit(src, tmp_path):
    folder, reference = fp8_checkpoint(src, tmp_path / "fp8", per_channel=False)
    model, info = load_model(folder, quantize=8, group_size=32, return_info=True)
    expected = load_model(reference_checkpoint(src, tmp_path / "ref", reference), quantize=8, group_size=32)
    assert isinstance(model.model.layers[0].self_attn.q_proj, nn.QuantizedLinear)
    assert type(model.model.layers[0].mlp.gate.wg) is nn.Linear  # the router stays float
    assert info.quantization == {"group_size": 32, "bits": 8, "mode": "affine"}
    assert bool(mx.array_equal(model(PROMPT), expected(PROMPT)))


# -- GPTQ: the conversion, tensor by tensor ---------------------------------------------------------


@pytest.mark.parametrize("bits,group_size,sym,v2", [
    (4, 32, True, False), (4, 64, False, False), (4, 128, False, True), (4, 256, True, False), (4, -1, False, True),
    (8, 64, False, False), (8, 128, True, True), (2, 32, False, False),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_mlx_dequantize_of_converted_gptq_equals_gptq_formula_bit_for_bit(bits, group_size, sym, v2, dtype):
    rng = np.random.default_rng(bits * 1000 + group_size)
    w = (rng.standard_normal((96, 512)) * rng.uniform(0.01, 1.0, (96, 1))).astype(dtype).astype(np.float32)
    tensors, fp16, exact = gptq_layer(w, bits=bits, group_size=group_size, sym=sym, v2=v2)
    op = GPTQv2ToMLX() if v2 else GPTQToMLX()
    weight, scales, biases = op.forward(mlx_backend(), [mx.array(tensors[k]) for k in ("qweight", "qzeros", "scales")])
    g = 512 // scales.shape[1]
    got = mx.dequantize(weight, scales, biases, group_size=g, bits=bits)
    assert got.dtype == mx.float32 and g in (32, 64, 128)
    assert np.array_equal(np.array(got).view(np.uint32), exact.view(np.uint32))  # the exact value of s·(q − z)
    assert np.array_equal(np.array(got.astype(mx.float16)).view(np.uint16), fp16.view(np.uint16))  # AutoGPTQ's fp16 result


def test_mlx_affine_packing_is_gptq_packing_transposed():
    """mx.quantize's own words: input k·(32/b)+j of row o in bits j·b of word [o, k] (GPTQ's order, transposed)."""
    w = mx.random.normal((8, 64), key=mx.random.key(1))
    q, _, _ = mx.quantize(w, group_size=32, bits=4)
    words = np.array(q)
    fields = (words[:, :, None] >> (4 * np.arange(8, dtype=np.uint32))) & 15
    scales, biases = mx.quantize(w, group_size=32, bits=4)[1:]
    rebuilt = mx.dequantize(mx.array(words), scales, biases, group_size=32, bits=4)
    manual = np.array(scales).repeat(32, 1) * fields.reshape(8, 64) + np.array(biases).repeat(32, 1)
    assert np.allclose(np.array(rebuilt), manual, atol=1e-6)


# -- GPTQ: whole checkpoints -------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    dict(bits=4, group_size=32, sym=True),
    dict(bits=4, group_size=64, sym=False, v2=True),
    dict(bits=4, group_size=-1, sym=True),
    dict(bits=8, group_size=64, sym=True),
], ids=["v1-sym-g32", "v2-asym-g64", "per-channel", "8bit"])
def test_gptq_checkpoint_converts_exactly_to_mlx_affine(src, tmp_path, kwargs):
    folder, reference = gptq_checkpoint(src, tmp_path / "gptq", **kwargs)
    model, info = load_model(folder, return_info=True)
    layer = model.model.layers[1]
    assert isinstance(layer.self_attn.q_proj, nn.QuantizedLinear) and layer.self_attn.q_proj.bits == kwargs["bits"]
    assert isinstance(layer.mlp.switch_mlp.gate_proj, QuantizedSwitchLinear)  # experts stacked, quantized
    assert type(layer.mlp.gate.wg) is nn.Linear
    for name, m in _linears(model).items():  # every converted weight dequantizes to GPTQ's exact value
        if isinstance(m, nn.QuantizedLinear) and "switch_mlp" not in name:
            got = mx.dequantize(m.weight, m.scales, m.biases, group_size=m.group_size, bits=m.bits)
            assert np.array_equal(np.array(got), reference[name + ".weight"]), name
    note = qnote(info.report)
    assert note.startswith("quantization: GPTQ") and "72 linear layers converted exactly" in note
    assert info.quantization["bits"] == kwargs["bits"]
    # the weights are equal bit for bit (above); quantized_matmul sums in another order than matmul
    expected = load_model(reference_checkpoint(src, tmp_path / "ref", reference))
    assert float(mx.abs(model(PROMPT) - expected(PROMPT)).max()) < 1e-4


def test_gptq_weights_are_within_their_group_step(src, tmp_path):
    folder, reference = gptq_checkpoint(src, tmp_path / "gptq", bits=4, group_size=32)
    w = float_weights(src)["model.layers.0.mlp.shared_mlp.up_proj.weight"]  # [128, 64], 2 groups per row
    got = reference["model.layers.0.mlp.shared_mlp.up_proj.weight"]
    step = np.abs(w).reshape(128, 2, 32).max(axis=2).repeat(32, 1) * 2 / 15  # the symmetric scale of each group
    assert (np.abs(got - w) <= step * (1 + 1e-3)).all()  # round to nearest, clipped at the top code


def test_gptq_8bit_logits_are_within_the_quantization_error(src, float_logits, tmp_path):
    folder, reference = gptq_checkpoint(src, tmp_path / "gptq", bits=8, group_size=64)
    assert _rel(load_model(folder)(PROMPT), float_logits) < 2.5 * _noise_control(src, tmp_path, reference)


@pytest.mark.parametrize("kwargs,why", [
    (dict(act_order=True), "act-order g_idx"),
    (dict(group_size=16), "no MLX group size fits"),
], ids=["act-order", "group-size-16"])
def test_gptq_layers_mlx_cannot_express_are_dequantized_with_a_note(src, tmp_path, kwargs, why):
    folder, reference = gptq_checkpoint(src, tmp_path / "gptq", **kwargs)
    model, info = load_model(folder, return_info=True)
    assert not isinstance(model.model.layers[0].self_attn.q_proj, nn.QuantizedLinear)
    assert isinstance(model.model.layers[0].mlp.switch_mlp.up_proj, SwitchLinear)
    assert why in qnote(info.report) and "dequantized to float32" in qnote(info.report)
    assert info.quantization is None
    expected = load_model(reference_checkpoint(src, tmp_path / "ref", reference))
    assert bool(mx.array_equal(model(PROMPT), expected(PROMPT)))
    # dequantized layers are float: quantizing after loading is allowed
    assert isinstance(load_model(folder, quantize=4, group_size=32).model.layers[0].self_attn.q_proj, nn.QuantizedLinear)


def test_angelslim_desc_act_with_static_groups_converts_exactly(src, tmp_path):
    """AngelSlim writes desc_act: true with static groups, whose g_idx is the identity grouping."""
    folder, reference = gptq_checkpoint(src, tmp_path / "gptq", desc_act=True)
    model, info = load_model(folder, return_info=True)
    assert isinstance(model.model.layers[0].self_attn.q_proj, nn.QuantizedLinear)
    assert "desc_act True" in qnote(info.report) and "converted exactly" in qnote(info.report)


def test_autogptq_quantize_config_json_without_g_idx(src, tmp_path):
    folder, reference = gptq_checkpoint(src, tmp_path / "gptq", config_file="quantize_config.json", drop_g_idx=True)
    model, info = load_model(folder, return_info=True)
    assert "quantize_config.json" in qnote(info.report) and "converted exactly" in qnote(info.report)
    expected = load_model(reference_checkpoint(src, tmp_path / "ref", reference))
    assert float(mx.abs(model(PROMPT) - expected(PROMPT)).max()) < 1e-4


def test_gptq_checkpoint_is_not_quantized_again(src, tmp_path):
    folder, _ = gptq_checkpoint(src, tmp_path / "gptq")
    with pytest.raises(ConfigError, match="already quantized"):
        load_model(folder, quantize=8)


def test_plan_reads_only_headers_of_quantized_checkpoints(src, tmp_path):
    fp8, _ = fp8_checkpoint(src, tmp_path / "fp8", per_channel=True)
    gptq, _ = gptq_checkpoint(src, tmp_path / "gptq")
    for folder in (fp8, gptq):
        p = plan(folder)
        assert p.report.ok and qnote(p.report).startswith("quantization:")
    act_order, _ = gptq_checkpoint(src, tmp_path / "act-order", act_order=True)
    assert "decided per layer from g_idx when loading" in qnote(plan(act_order).report)


# -- zoo convert → plain mlx_lm.load -----------------------------------------------------------------


def test_convert_writes_mlx_folders_that_plain_mlx_lm_loads(src, tmp_path):
    import mlx_lm

    gptq, _ = gptq_checkpoint(src, tmp_path / "gptq")
    fp8, _ = fp8_checkpoint(src, tmp_path / "fp8", per_channel=True, config_style="compressed-tensors")
    for name, folder, kwargs, bits in (("gptq", gptq, {}, 4), ("fp8-q8", fp8, dict(quantize=8, group_size=32), 8),
                                       ("fp8-float", fp8, {}, None)):
        out = tmp_path / f"out-{name}"
        convert(folder, out, **kwargs)
        config = json.loads((out / "config.json").read_text())
        if bits is None:
            assert "quantization" not in config and "quantization_config" not in config
        else:
            assert config["quantization"]["bits"] == bits and config["quantization_config"].get("quant_method") is None
        keys = mx.load(str(out / "model.safetensors"))
        assert not any(k.endswith((".qweight", ".weight_scale", ".input_scale", ".g_idx")) for k in keys)
        theirs, _ = mlx_lm.load(str(out))
        ours = load_model(folder, **kwargs)
        assert bool(mx.array_equal(ours(PROMPT), theirs(PROMPT))), name
        assert bool(mx.array_equal(load_model(out)(PROMPT), theirs(PROMPT))), name


# -- refusals ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("qc,key", [
    ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "$.quantization_config.quant_method"),
    ({"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemv"}, "$.quantization_config.version"),
    ({"quant_method": "gptq", "bits": 3, "group_size": 128}, "$.quantization_config.bits"),
    ({"quant_method": "gptq", "bits": 4, "group_size": 128, "checkpoint_format": "marlin"}, "$.quantization_config.checkpoint_format"),
    ({"quant_method": "fp8", "weight_block_size": [128, 128]}, "$.quantization_config.weight_block_size"),
    ({"quant_method": "compressed-tensors", "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "int", "strategy": "group"}}}},
     "$.quantization_config.config_groups.group_0.weights"),
])
def test_unsupported_quantization_is_refused_naming_the_key(src, tmp_path, qc, key):
    config = json.loads((src / "config.json").read_text())
    config["quantization_config"] = qc
    folder = write(tmp_path / "q", {k: v for k, v in float_weights(src).items()}, config)
    with pytest.raises(ConfigError) as e:
        load_model(folder)
    assert f"config.json::{key}" in str(e.value)


# -- the dense family (hunyuan_v1_dense rules) -------------------------------------------------------

DENSE = {
    "architectures": ["HunYuanDenseV1ForCausalLM"], "model_type": "hunyuan_v1_dense", "vocab_size": 477, "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
    "use_qk_norm": True, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 256,
    "rope_scaling": {"type": "dynamic", "alpha": 1000.0, "factor": 1.0}, "tie_word_embeddings": True, "torch_dtype": "float32",
}


@pytest.fixture(scope="module")
def dense_src(src, tmp_path_factory):
    """A float hunyuan_v1_dense checkpoint (zoo's module names are the Hugging Face ones)."""
    from mlx.utils import tree_flatten

    from zoo_registry.configs import validate_config
    from zoo_registry.loading import build_model

    mx.random.seed(3)
    arch, normalised = validate_config(dict(DENSE), "dense config", None)
    weights = {k: np.array(v) for k, v in tree_flatten(build_model(arch, normalised).parameters())}
    return write(tmp_path_factory.mktemp("dense") / "float", weights, DENSE, tokenizer_from=src)


def test_dense_fp8_and_gptq_checkpoints_load_and_convert(dense_src, tmp_path):
    fp8, fp8_ref = fp8_checkpoint(dense_src, tmp_path / "fp8", per_channel=True)
    gptq, gptq_ref = gptq_checkpoint(dense_src, tmp_path / "gptq", group_size=64)
    model = load_model(fp8)
    assert bool(mx.array_equal(model(PROMPT), load_model(reference_checkpoint(dense_src, tmp_path / "r1", fp8_ref))(PROMPT)))
    model, info = load_model(gptq, return_info=True)
    assert isinstance(model.model.layers[0].mlp.down_proj, nn.QuantizedLinear) and "14 linear layers converted exactly" in qnote(info.report)
    _matches_reference_and_converts(model, dense_src, gptq, gptq_ref, tmp_path)


def test_check_finite_catches_fp8_nan_bytes(src, tmp_path):
    """e4m3fn's NaN (S.1111.111) is a uint8 on disk: the checkpoint scan cannot see it, the decoded weight can."""
    from safetensors.torch import load_file, save_file

    from zoo_registry.errors import CheckpointError

    folder, _ = fp8_checkpoint(src, tmp_path / "fp8", per_channel=False)
    tensors = load_file(str(folder / "model.safetensors"))
    name = "model.layers.2.self_attn.o_proj.weight"
    raw = tensors[name].view(torch.uint8).clone()
    raw[3, 5] = 0x7F
    tensors[name] = raw.view(torch.float8_e4m3fn)
    save_file(tensors, str(folder / "model.safetensors"))
    load_model(folder)  # without the check, as with any checkpoint
    with pytest.raises(CheckpointError, match="o_proj.weight.*FP8 NaN bytes"):
        load_model(folder, check_finite=True)


# -- AWQ (Tencent's -AWQ-Int4 releases) ---------------------------------------------------------------


@pytest.mark.parametrize("group_size", [32, 64, 128, 256])
def test_mlx_dequantize_of_converted_awq_equals_awq_formula_bit_for_bit(group_size):
    rng = np.random.default_rng(group_size)
    w = (rng.standard_normal((64, 512)) * rng.uniform(0.01, 1.0, (64, 1))).astype(np.float32)
    tensors, exact = awq_layer(w, group_size=group_size)
    weight, scales, biases = AWQToMLX().forward(mlx_backend(), [mx.array(tensors[k]) for k in ("qweight", "qzeros", "scales")])
    got = mx.dequantize(weight, scales, biases, group_size=512 // scales.shape[1], bits=4)
    assert np.array_equal(np.array(got).view(np.uint32), exact.view(np.uint32))


def test_awq_checkpoint_converts_exactly(src, tmp_path):
    folder, reference = awq_checkpoint(src, tmp_path / "awq", group_size=64)
    model, info = load_model(folder, return_info=True)
    assert isinstance(model.model.layers[0].self_attn.q_proj, nn.QuantizedLinear)
    assert isinstance(model.model.layers[0].mlp.switch_mlp.gate_proj, QuantizedSwitchLinear)
    assert qnote(info.report).startswith("quantization: AWQ") and "72 linear layers converted exactly" in qnote(info.report)
    _matches_reference_and_converts(model, src, folder, reference, tmp_path)


def test_dense_awq_agrees_with_mlx_lm_own_awq_reader(dense_src, tmp_path):
    """mlx-lm 0.32 reads AutoAWQ checkpoints of models without stacked experts, casting every float
    weight to the scales' float16: zoo's exact model agrees up to that rounding."""
    import mlx_lm

    folder, _ = awq_checkpoint(dense_src, tmp_path / "awq", group_size=32)
    ours = load_model(folder)(PROMPT)
    theirs, _ = mlx_lm.load(str(folder))
    assert _rel(theirs(PROMPT).astype(mx.float32), ours) < 1e-2


def test_experts_of_a_layer_take_one_path(src, tmp_path):
    """One act-order expert makes its layer's experts all dequantize: they are stacked into one tensor."""
    from safetensors.numpy import load_file, save_file

    folder, reference = gptq_checkpoint(src, tmp_path / "gptq")
    tensors = load_file(str(folder / "model.safetensors"))
    name = "model.layers.1.mlp.experts.2.up_proj"
    w = float_weights(src)[name + ".weight"]
    layer, _, exact = gptq_layer(w, act_order=True, rng=np.random.default_rng(5))
    tensors.update({f"{name}.{k}": v for k, v in layer.items()})
    reference[name + ".weight"] = exact
    save_file(tensors, str(folder / "model.safetensors"))
    model, info = load_model(folder, return_info=True)
    assert isinstance(model.model.layers[1].mlp.switch_mlp.up_proj, SwitchLinear)
    assert isinstance(model.model.layers[1].mlp.switch_mlp.gate_proj, QuantizedSwitchLinear)
    assert "3 linear layers dequantized" in qnote(info.report) and "like another expert" in qnote(info.report)
    expected = load_model(reference_checkpoint(src, tmp_path / "ref", reference))
    assert float(mx.abs(model(PROMPT) - expected(PROMPT)).max()) < 1e-4
