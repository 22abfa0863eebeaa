"""``zoo convert``: MLX layout loadable by plain mlx_lm.load, quantized output, and back to HF layout."""

import sys
import subprocess

import mlx.core as mx
import pytest
from mlx.utils import tree_flatten

from loading_fixtures import max_diff, params
from zoo_registry.convert import convert
from zoo_registry.errors import ConfigError
from zoo_registry.loading import load_model

PROMPT = mx.array([[5, 17, 42, 8, 99, 3]])


@pytest.fixture(autouse=True)
def mlx_ops_only():
    """Outputs here are compared bit for bit with mlx-lm's, i.e. MLX's own ops; zoo's CPU kernels
    agree with those to float rounding only (tests/test_kernels.py)."""
    from zoo_registry import kernels

    with kernels.disabled():
        yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """hunyuan-tiny's generator: a real HF-layout (per-expert) checkpoint with a tokenizer."""
    from zoo_hunyuan.tiny import generate

    return generate(tmp_path_factory.mktemp("src") / "tiny")


def test_mlx_output_loads_with_plain_mlx_lm(tiny, tmp_path):
    import mlx_lm

    out = tmp_path / "mlx"
    convert(tiny, out)
    assert not any("experts." in k for k in mx.load(str(out / "model.safetensors")))
    theirs, tokenizer = mlx_lm.load(str(out))
    ours = load_model(tiny)
    assert max_diff(ours, params(theirs)) == 0.0
    assert bool(mx.array_equal(ours(PROMPT), theirs(PROMPT)))
    assert tokenizer.encode("Good morning")
    assert (out / "tokenizer.json").is_file() and not list(out.glob("*.py"))


def test_quantized_output_loads_with_mlx_lm_and_zoo(tiny, tmp_path):
    import mlx.nn as nn
    import mlx_lm

    out = tmp_path / "q4"
    convert(tiny, out, quantize=4, group_size=32)
    theirs, _ = mlx_lm.load(str(out))
    ours = load_model(out)
    assert isinstance(ours.model.layers[0].self_attn.q_proj, nn.QuantizedLinear)
    assert type(theirs.model.layers[0].mlp.gate.wg) is nn.Linear  # router kept unquantized on disk
    assert max_diff(ours, params(theirs)) == 0.0
    assert bool(mx.array_equal(ours(PROMPT), theirs(PROMPT)))


def test_checkpoint_quantized_by_mlx_lm_convert_loads(tiny, tmp_path):
    import mlx_lm
    from mlx_lm import convert as mlx_convert

    out = tmp_path / "mlxlm-q"
    mlx_convert(str(tiny), mlx_path=str(out), quantize=True, q_group_size=32, q_bits=4)
    theirs, _ = mlx_lm.load(str(out))
    ours, info = load_model(out, return_info=True)
    assert info.report.ok and info.quantization["bits"] == 4
    assert max_diff(ours, params(theirs)) == 0.0
    assert float(mx.abs(ours(PROMPT) - theirs(PROMPT)).max()) == 0.0


def test_to_hf_restores_the_original_layout(tiny, tmp_path):
    mlx_dir, hf_dir = tmp_path / "mlx", tmp_path / "hf"
    convert(tiny, mlx_dir)
    convert(mlx_dir, hf_dir, to="hf")
    original = mx.load(str(tiny / "model.safetensors"))
    back = mx.load(str(hf_dir / "model.safetensors"))
    assert sorted(back) == sorted(original)
    assert all(bool(mx.array_equal(back[k], original[k])) for k in original)


def test_sharded_output(tiny, tmp_path):
    out = tmp_path / "sharded"
    convert(tiny, out, shard_bytes=256 * 1024)
    assert (out / "model.safetensors.index.json").is_file() and len(list(out.glob("model-*.safetensors"))) > 1
    assert max_diff(load_model(out), params(load_model(tiny))) == 0.0


def test_refuses_non_empty_destination(tiny, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("keep me")
    with pytest.raises(ConfigError, match="destination folder is not empty"):
        convert(tiny, tmp_path / "busy")


def test_cli(tiny, tmp_path):
    out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, "-m", "zoo_registry.cli.main", "convert", str(tiny), str(out), "-q", "8", "--group-size", "32"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "8-bit (hunyuan, mlx layout)" in proc.stdout
    assert "rules applied: stack-experts x12" in proc.stderr
    again = subprocess.run([sys.executable, "-m", "zoo_registry.cli.main", "convert", str(tiny), str(out)], capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and "destination folder is not empty" in again.stderr
