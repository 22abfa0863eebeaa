"""The restricted PyTorch checkpoint reader against real ``torch.save`` output.

Every expected value comes from torch itself (``torch.load`` of the same file, or the tensor that
was saved); the reader under test never imports torch (checked in a subprocess with torch
blocked).
"""

from __future__ import annotations

import collections
import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

import torch  # the test extra installs it; the reader itself does not need it

from zoo_registry.checkpoint import open_checkpoint  # noqa: E402
from zoo_registry.errors import UnsafeInputError, ZooWarning  # noqa: E402
from zoo_registry.loading import load_model, plan  # noqa: E402
from zoo_registry.torch_pickle import TorchFile  # noqa: E402

PROMPT = mx.array([[5, 17, 42, 8, 99, 3]])


def as_numpy(t: "torch.Tensor") -> np.ndarray:
    """torch → NumPy as the reader returns it: bf16 as float32 values, float8 as raw bytes."""
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.float().numpy()
    if t.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        return t.contiguous().view(torch.uint8).numpy()
    return t.numpy()


def mlx_numpy(a: mx.array) -> np.ndarray:
    return np.array(a.astype(mx.float32) if a.dtype == mx.bfloat16 else a)


def assert_same(path, expected: dict):
    got = TorchFile(path).tensors()
    assert sorted(got) == sorted(expected)
    for name, ref in expected.items():
        want = as_numpy(ref)
        have = mlx_numpy(got[name])
        assert have.shape == want.shape, name
        assert np.array_equal(have, want), name
    return got


def test_every_dtype_round_trips(tmp_path):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(3, 5, generator=g) * 100
    sd = {
        "f32": base.clone(), "f64": base.double(), "f16": base.half(), "bf16": base.bfloat16(),
        "i64": base.long(), "i32": base.int(), "i16": base.short(), "i8": base.clamp(-128, 127).to(torch.int8),
        "u8": base.abs().clamp(0, 255).to(torch.uint8), "bool": base > 0, "u16": base.abs().to(torch.int32).to(torch.uint16),
        "f8": (base / 100).to(torch.float8_e4m3fn),
    }
    torch.save(sd, tmp_path / "w.bin")
    got = assert_same(tmp_path / "w.bin", sd)
    names = {"f32": mx.float32, "f64": mx.float64, "f16": mx.float16, "bf16": mx.bfloat16, "i64": mx.int64, "i32": mx.int32,
             "i16": mx.int16, "i8": mx.int8, "u8": mx.uint8, "bool": mx.bool_, "u16": mx.uint16, "f8": mx.uint8}
    assert {k: v.dtype for k, v in got.items()} == names
    specs = TorchFile(tmp_path / "w.bin").specs()
    assert specs["bf16"].dtype == "bfloat16" and specs["f8"].dtype == "float8_e4m3" and specs["i16"].shape == (3, 5)


def test_float8_bytes_match_safetensors(tmp_path):
    """float8 comes out as the raw bytes mx.load gives for the same tensor in a safetensors file."""
    from safetensors.torch import save_file

    w = (torch.randn(4, 8) / 4).to(torch.float8_e4m3fn)
    torch.save({"w": w}, tmp_path / "w.bin")
    save_file({"w": w}, str(tmp_path / "w.safetensors"))
    assert bool(mx.array_equal(TorchFile(tmp_path / "w.bin").tensors()["w"], mx.load(str(tmp_path / "w.safetensors"))["w"]))


def test_views_of_one_storage(tmp_path):
    """Slices, transposes, expands and offsets into one shared storage, as torch saves them."""
    base = torch.arange(60, dtype=torch.float32).reshape(6, 10)
    sd = collections.OrderedDict(
        base=base, row=base[2], col=base[:, 3], transposed=base.t(), strided=base[1::2, ::3], offset_block=base[3:, 4:7],
        expanded=base[0:1, :4].expand(5, 4), scalar_view=base[4, 4], bf16=base.bfloat16()[::2].t(),
    )
    torch.save(sd, tmp_path / "views.bin")
    f = TorchFile(tmp_path / "views.bin")
    keys = {t.storage.key for n, t in f.tensors_refs.items() if n != "bf16"}
    assert len(keys) == 1  # really one storage, as torch wrote it
    assert not sd["transposed"].is_contiguous() and f.tensors_refs["transposed"].stride == (1, 10)
    assert f.tensors_refs["expanded"].stride == (0, 1)
    assert_same(tmp_path / "views.bin", sd)


def test_scalars_empty_tensors_and_parameters(tmp_path):
    sd = {
        "scalar": torch.tensor(3.5), "int_scalar": torch.tensor(7), "empty": torch.zeros(0), "empty_2d": torch.zeros(3, 0, 2),
        "empty_bf16": torch.zeros(0, 4, dtype=torch.bfloat16), "param": torch.nn.Parameter(torch.randn(2, 3)),
        "buffer": torch.ones(1),
    }
    torch.save(sd, tmp_path / "w.pt")
    got = assert_same(tmp_path / "w.pt", sd)
    assert got["scalar"].shape == () and got["empty_2d"].shape == (3, 0, 2) and got["empty_bf16"].dtype == mx.bfloat16


def test_module_state_dict_and_archive_name(tmp_path):
    """An nn.Module's state dict (OrderedDict with _metadata) under a custom archive folder name."""
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.Embedding(5, 4))
    sd = m.state_dict()
    torch.save(sd, tmp_path / "weird name.pth")
    import zipfile

    assert zipfile.ZipFile(tmp_path / "weird name.pth").namelist()[0].startswith("weird name/")
    assert_same(tmp_path / "weird name.pth", sd)


def test_the_reader_does_not_need_torch(tmp_path):
    sd = {"w": torch.randn(3, 4).bfloat16(), "v": torch.arange(6).reshape(2, 3).t()}
    torch.save(sd, tmp_path / "w.bin")
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any `import torch` now raises ImportError
        "from zoo_registry.torch_pickle import TorchFile\n"
        f"t = TorchFile({str(tmp_path / 'w.bin')!r}).tensors()\n"
        "print(sorted(t), t['w'].dtype, t['v'].shape, t['v'].tolist())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['v', 'w'] mlx.core.bfloat16 (3, 2) [[0, 3], [1, 4], [2, 5]]"


# -- folders: opt-in, index-sharded layouts, a tiny HunYuan as pickles ----------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """hunyuan-tiny's generator: a real HF-layout safetensors checkpoint with a tokenizer."""
    from zoo_hunyuan.tiny import generate

    return generate(tmp_path_factory.mktemp("src") / "tiny")


def as_pickles(src: Path, dst: Path, shards: int = 1) -> Path:
    """The same checkpoint as transformers' ``save_pretrained(safe_serialization=False)`` lays it out."""
    from safetensors.torch import load_file

    dst.mkdir(parents=True)
    tensors = {}
    for f in sorted(src.glob("*.safetensors")):
        tensors.update(load_file(str(f)))
    for f in src.iterdir():
        if f.suffix != ".safetensors" and f.name != "model.safetensors.index.json" and f.is_file():
            shutil.copy2(f, dst / f.name)
    names = sorted(tensors)
    if shards == 1:
        torch.save({k: tensors[k] for k in names}, dst / "pytorch_model.bin")
        return dst
    weight_map = {}
    for i in range(shards):
        fname = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin"
        torch.save({k: tensors[k] for k in names[i::shards]}, dst / fname)
        weight_map.update({k: fname for k in names[i::shards]})
    (dst / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return dst


def test_pickle_folder_needs_the_opt_in(tiny, tmp_path):
    folder = as_pickles(tiny, tmp_path / "pk", shards=2)
    with pytest.raises(UnsafeInputError) as e:
        load_model(folder)
    assert "pytorch_model.bin.index.json: shard 'pytorch_model-00001-of-00002.bin' is a pickle file" in str(e.value)
    assert "--allow-pickle-weights" in e.value.hint and "zoo convert SRC DST --allow-pickle-weights" in e.value.hint
    single = as_pickles(tiny, tmp_path / "one")
    with pytest.raises(UnsafeInputError, match=r"only pickle-based weights found \(pytorch_model.bin\)") as e:
        plan(single)
    assert "restricted reader" in e.value.hint


@pytest.mark.parametrize("shards", [1, 3])
def test_tiny_hunyuan_from_pickles_matches_its_safetensors_twin(tiny, tmp_path, shards):
    folder = as_pickles(tiny, tmp_path / "pk", shards=shards)
    ckpt = open_checkpoint(folder, allow_pickle_weights=True)
    assert len(ckpt.pickle_files) == shards and (ckpt.index is not None) == (shards > 1)
    with pytest.warns(ZooWarning, match="restricted reader"):
        ours, info = load_model(folder, allow_pickle_weights=True, return_info=True)
    reference = load_model(tiny)
    assert bool(mx.array_equal(ours(PROMPT), reference(PROMPT)))
    assert [p.name for p in info.pickle_files] == [p.name for p in ckpt.pickle_files]
    assert any("restricted reader" in n for n in info.report.notes)
    dry = plan(folder, allow_pickle_weights=True)
    assert dry.report.ok and any("restricted reader" in n for n in dry.report.notes)


def test_index_shard_missing_a_tensor_is_named(tiny, tmp_path):
    folder = as_pickles(tiny, tmp_path / "pk", shards=2)
    index = json.loads((folder / "pytorch_model.bin.index.json").read_text())
    index["weight_map"]["model.ghost.weight"] = "pytorch_model-00001-of-00002.bin"
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    from zoo_registry.errors import CheckpointError

    with pytest.raises(CheckpointError, match=r"pytorch_model.bin.index.json: 1 tensor\(s\) listed in the index are not in their shard, e.g. 'model.ghost.weight'"):
        load_model(folder, allow_pickle_weights=True)


def test_safetensors_win_over_pickles_in_the_same_folder(tiny, tmp_path):
    folder = tmp_path / "both"
    shutil.copytree(tiny, folder)
    torch.save({"junk": torch.zeros(1)}, folder / "pytorch_model.bin")
    assert open_checkpoint(folder, allow_pickle_weights=True).pickle_files == []


def test_misnamed_index_listing_safetensors_needs_no_opt_in(tiny, tmp_path):
    """A13B ships ``pytorch_model.bin.index.json`` whose shards are safetensors files."""
    folder = tmp_path / "a13b-like"
    shutil.copytree(tiny, folder)
    (folder / "model.safetensors").rename(folder / "model-00001-of-00001.safetensors")
    names = list(mx.load(str(folder / "model-00001-of-00001.safetensors")))
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": {n: "model-00001-of-00001.safetensors" for n in names}}))
    ckpt = open_checkpoint(folder)
    assert ckpt.index_file == "pytorch_model.bin.index.json" and ckpt.pickle_files == []


def test_cli_convert_then_load_without_opt_in(tiny, tmp_path):
    import mlx_lm

    folder = as_pickles(tiny, tmp_path / "pk", shards=2)
    cli = [sys.executable, "-m", "zoo_registry.cli.main"]
    refused = subprocess.run(cli + ["load", str(folder)], capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "is a pickle file" in refused.stderr and "--allow-pickle-weights" in refused.stderr
    out = tmp_path / "converted"
    conv = subprocess.run(cli + ["convert", str(folder), str(out), "--allow-pickle-weights"], capture_output=True, text=True, timeout=300)
    assert conv.returncode == 0, conv.stderr
    assert "restricted reader" in conv.stderr and not list(out.glob("*.bin"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted", "pk"]  # the staging folder is gone
    gen = subprocess.run(cli + ["generate", str(folder), "--allow-pickle-weights", "--prompt", "Good morning", "--max-tokens", "4"],
                         capture_output=True, text=True, timeout=300)
    assert gen.returncode == 0, gen.stderr
    assert "zoo: warning:" in gen.stderr and "restricted reader" in gen.stderr and gen.stdout.strip()
    again = load_model(out)  # safetensors now: no opt-in needed
    assert bool(mx.array_equal(again(PROMPT), load_model(tiny)(PROMPT)))
    theirs, _ = mlx_lm.load(str(out))
    from zoo_registry import kernels

    with kernels.disabled():  # on MLX's ops zoo's model is mlx-lm's, bit for bit
        assert bool(mx.array_equal(theirs(PROMPT), again(PROMPT)))
    # zoo's CPU kernels (fused MLP/MoE blocks summing in float32, one-node norms and attention):
    # equal to float32 rounding, not bit for bit
    ref = np.array(theirs(PROMPT))
    np.testing.assert_allclose(np.array(again(PROMPT)), ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_mlx_lm_architecture_from_pickles(tmp_path):
    """A llama (served by mlx-lm itself) saved by torch loads, converts, and the result loads in mlx_lm."""
    import mlx_lm
    from mlx_lm.models import llama
    from mlx.utils import tree_flatten

    from zoo_registry.convert import convert

    config = {"model_type": "llama", "hidden_size": 32, "num_hidden_layers": 2, "intermediate_size": 64,
              "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "vocab_size": 128,
              "tie_word_embeddings": False}
    mx.random.seed(1)
    ref = llama.Model(llama.ModelArgs.from_dict(config))
    weights = {k: np.array(v) for k, v in tree_flatten(ref.parameters())}
    src = tmp_path / "llama"
    src.mkdir()
    (src / "config.json").write_text(json.dumps(config))
    torch.save({k: torch.from_numpy(v) for k, v in weights.items()}, src / "pytorch_model.bin")
    with pytest.warns(ZooWarning, match="restricted reader"):
        ours = load_model(src, allow_pickle_weights=True)
    assert bool(mx.array_equal(ours(PROMPT), ref(PROMPT)))
    with pytest.warns(ZooWarning):
        convert(src, tmp_path / "out", allow_pickle_weights=True)
    theirs = mlx_lm.utils.load_model(tmp_path / "out")[0]
    assert bool(mx.array_equal(theirs(PROMPT), ref(PROMPT)))
    torch.save({k: torch.from_numpy(v) for k, v in weights.items() if k != "model.norm.weight"}, src / "pytorch_model.bin")
    from zoo_registry.errors import CheckpointError

    with pytest.raises(CheckpointError, match=r"mlx-lm could not load the checkpoint: Missing 1 parameters: \n?model.norm.weight"):
        load_model(src, allow_pickle_weights=True)


def test_transformers_state_dict_matches_transformers_logits(tmp_path):
    """A transformers model saved as ``pytorch_model.bin`` (``torch.save`` of its state dict, the
    layout transformers 4 wrote) loads through the restricted reader and gives transformers' logits."""
    import transformers
    cfg = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, vocab_size=128, tie_word_embeddings=False)
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(cfg).eval()
    folder = tmp_path / "hf"
    cfg.save_pretrained(folder)
    torch.save(hf.state_dict(), folder / "pytorch_model.bin")
    with torch.no_grad():
        want = hf(torch.tensor(np.array(PROMPT))).logits.numpy()
    with pytest.warns(ZooWarning, match="restricted reader"):
        ours = load_model(folder, allow_pickle_weights=True)
    got = np.array(ours(PROMPT))
    assert np.abs(got - want).max() < 1e-4
