"""Bad checkpoints: refused with one exact message naming the file and tensor; no code is ever run.

Uses the real hunyuan-tiny checkpoint (real safetensors, real tokenizer), damaged one way per
test. Cases already pinned elsewhere (index naming a missing shard, an index escaping the folder,
pickle-only folders, ``model_file``, ``auto_map`` for an unserved model type, ``auto_map`` beside a
served one) live in tests/test_loading_sources.py; docs/reliability.md lists them all.
"""

import json
import os
import shutil
import types
import warnings

import mlx.core as mx
import pytest

from zoo_registry.checkpoint import read_header
from zoo_registry.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    UnsafeInputError,
    WeightsMismatchError,
    ZooWarning,
)
from zoo_registry.loading import load, load_model, plan

REDOWNLOAD = "the file is damaged or incomplete (an interrupted download?); download or convert it again"


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory):
    from zoo_hunyuan.tiny import generate

    return generate(tmp_path_factory.mktemp("tiny") / "hunyuan-tiny", seed=0)


@pytest.fixture
def tiny(tmp_path, tiny_source):
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_source, folder)
    return folder


def weights(folder):
    return mx.load(str(folder / "model.safetensors"))


def save(folder, tensors):
    mx.save_safetensors(str(folder / "model.safetensors"), tensors)


def test_missing_config_json(tiny):
    (tiny / "config.json").unlink()
    with pytest.raises(CheckpointNotFoundError) as e:
        load_model(tiny)
    assert str(e.value) == f"{tiny / 'config.json'}: config.json not found"
    assert e.value.hint == "a checkpoint folder needs the model's config.json"


def test_config_json_is_a_directory(tiny):
    (tiny / "config.json").unlink()
    (tiny / "config.json").mkdir()
    with pytest.raises(CheckpointError) as e:
        load_model(tiny)
    assert str(e.value) == f"{tiny / 'config.json'}: config.json is a directory, not a file"


def test_config_json_symlink_loop(tiny):
    (tiny / "config.json").unlink()
    (tiny / "config.json").symlink_to(tiny / "config.json")
    with pytest.raises(CheckpointError) as e:
        load_model(tiny)
    assert str(e.value) == f"{tiny / 'config.json'}: config.json is a symbolic link that loops back on itself"


def test_checkpoint_folder_symlink_loop(tmp_path):
    loop = tmp_path / "model"
    loop.symlink_to(loop)
    with pytest.raises(CheckpointNotFoundError) as e:
        load_model(loop)
    assert str(e.value) == f"{loop}: checkpoint folder is a symbolic link that loops back on itself"


def test_missing_safetensors(tiny):
    (tiny / "model.safetensors").unlink()
    with pytest.raises(CheckpointNotFoundError) as e:
        load_model(tiny)
    assert str(e.value) == (f"{tiny}: no weights found (expected model.safetensors, model-XXXXX-of-XXXXX.safetensors with "
                            "model.safetensors.index.json, or *.safetensors)")


def test_truncated_safetensors_names_the_first_tensor_cut_off(tiny):
    path = tiny / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8: 8 + header_len])
    data_bytes = len(data) - 1000 - 8 - header_len
    cut = sorted((v["data_offsets"][1], k) for k, v in header.items() if k != "__metadata__" and v["data_offsets"][1] > data_bytes)[0][1]
    begin, end = header[cut]["data_offsets"]
    with pytest.raises(CheckpointError) as e:
        load_model(tiny)
    assert str(e.value) == f"{path}: truncated or corrupt: tensor {cut!r} needs data bytes {begin}..{end}, but the file has only {data_bytes}"
    assert e.value.hint == REDOWNLOAD
    assert plan(tiny).report.ok  # a dry run reads headers only, so it still plans


def test_empty_safetensors(tiny):
    (tiny / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError) as e:
        load_model(tiny)
    assert str(e.value) == f"{tiny / 'model.safetensors'}: not a safetensors file (shorter than 8 bytes)"


def test_corrupt_safetensors_header(tiny):
    path = tiny / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[8:16] = b"garbage!"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as e:
        load_model(tiny)
    assert str(e.value) == f"{path}: safetensors header is not valid JSON: Expecting value: line 1 column 1 (char 0)"
    assert e.value.hint == REDOWNLOAD


def test_impossible_header_length(tiny):
    path = tiny / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes((2**40).to_bytes(8, "little") + data[8:])
    with pytest.raises(CheckpointError) as e:
        read_header(path)
    assert str(e.value) == f"{path}: not a safetensors file (header length {2**40} is impossible for a {len(data)}-byte file)"


def test_tensor_of_the_wrong_shape(tiny):
    w = weights(tiny)
    w["model.norm.weight"] = mx.zeros((3,))
    save(tiny, w)
    with pytest.raises(WeightsMismatchError) as e:
        load_model(tiny)
    assert str(e.value) == (f"checkpoint {tiny} does not fit the hunyuan model (1 mismatched)\n"
                            "  MISMATCHED  model.norm.weight  expected float32[64], got float32[3]")
    assert e.value.report.mismatched and not e.value.report.missing


def test_tensor_of_the_wrong_dtype(tiny):
    w = weights(tiny)
    w["model.norm.weight"] = w["model.norm.weight"].astype(mx.int32)
    save(tiny, w)
    with pytest.raises(WeightsMismatchError) as e:
        load_model(tiny)
    assert str(e.value) == (f"checkpoint {tiny} does not fit the hunyuan model (1 mismatched)\n"
                            "  MISMATCHED  model.norm.weight  expected float32[64], got int32[64]")


def test_nan_weights_are_found_on_request_naming_file_and_tensor(tiny):
    w = weights(tiny)
    w["model.norm.weight"] = mx.where(mx.arange(64) == 5, float("nan"), w["model.norm.weight"])
    w["model.embed_tokens.weight"] = mx.where(mx.arange(64) == 0, float("inf"), w["model.embed_tokens.weight"])
    save(tiny, w)
    load_model(tiny)  # off by default: costs a second pass over the weights
    with pytest.raises(CheckpointError) as e:
        load_model(tiny, check_finite=True)
    path = tiny / "model.safetensors"
    assert str(e.value) == (f"{path}: tensor 'model.embed_tokens.weight' holds 477 non-finite values (NaN or inf) of 30528 "
                            "(and 1 more tensor)")
    assert e.value.hint == ("the checkpoint is corrupt or was saved from a diverged run; download or convert it again "
                            "(loading without --check-finite would use these values)")


def test_overflow_when_casting_is_found_on_request(tiny):
    w = weights(tiny)
    w["model.norm.weight"] = w["model.norm.weight"] * 0 + 1e6  # finite in float32, inf in float16
    save(tiny, w)
    load_model(tiny, check_finite=True)
    with pytest.raises(CheckpointError) as e:
        load_model(tiny, check_finite=True, dtype="float16")
    assert str(e.value) == f"{tiny}: parameter 'model.norm.weight' holds NaN or inf after casting to float16 (the checkpoint's values are finite)"


def test_pt_file_beside_nothing_else_is_refused(tiny):
    (tiny / "model.safetensors").unlink()
    (tiny / "consolidated.00.pth").write_bytes(b"\x80\x02}q\x00.")  # a real (empty-dict) pickle: never opened
    with pytest.raises(UnsafeInputError) as e:
        load_model(tiny)
    assert str(e.value) == f"{tiny}: only pickle-based weights found (consolidated.00.pth); zoo reads pickles only when asked to, because unpickling can run code"


def test_pickle_shard_named_by_an_index_is_refused(tiny):
    (tiny / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"model.norm.weight": "pytorch_model-00001.bin"}}))
    with pytest.raises(UnsafeInputError) as e:
        load_model(tiny)
    assert str(e.value) == f"{tiny / 'model.safetensors.index.json'}: shard 'pytorch_model-00001.bin' is a pickle file; zoo reads pickles only when asked to, because unpickling can run code"


# -- tokenizers never run checkpoint code ---------------------------------------------------------

EVIL = "import pathlib\npathlib.Path(__file__).with_name('RAN').write_text('ran')\nclass EvilTokenizer: pass\nclass EvilConfig: pass\n"


def plant_code(folder, tokenizer_class=True):
    """A remote-code tokenizer and config: Python files that leave a marker if ever imported."""
    for name in ("tokenization_evil.py", "configuration_evil.py"):
        (folder / name).write_text(EVIL)
    tok = json.loads((folder / "tokenizer_config.json").read_text())
    tok["auto_map"] = {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}
    if not tokenizer_class:
        tok.pop("tokenizer_class")
        (folder / "tokenizer.json").unlink()
    (folder / "tokenizer_config.json").write_text(json.dumps(tok))
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "configuration_evil.EvilConfig"}  # beside a served model_type: ignored
    (folder / "config.json").write_text(json.dumps(cfg))


def test_tokenizer_auto_map_is_ignored_with_a_warning(tiny, monkeypatch):
    plant_code(tiny)
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("transformers asked whether to run the checkpoint's code"))
    with pytest.warns(ZooWarning) as caught:
        _, tokenizer = load(tiny)
    assert [str(w.message) for w in caught if w.category is ZooWarning] == [
        f"{tiny / 'tokenizer_config.json'}::$.auto_map: ignored; zoo never runs the checkpoint's tokenizer code "
        "(tokenization_evil.EvilTokenizer), so transformers' built-in tokenizer classes were used"
    ]
    assert tokenizer.decode(tokenizer.encode("hello")) == "hello"
    assert not (tiny / "RAN").exists()


def test_tokenizer_that_needs_its_own_code_is_refused(tiny, monkeypatch):
    plant_code(tiny, tokenizer_class=False)
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("transformers asked whether to run the checkpoint's code"))
    with pytest.raises(UnsafeInputError) as e:
        load(tiny)
    assert str(e.value) == (f"{tiny / 'tokenizer_config.json'}::$.auto_map: the tokenizer needs the checkpoint's own Python code "
                            "(tokenization_evil.EvilTokenizer), which zoo never runs")
    assert not (tiny / "RAN").exists()


def test_trust_remote_code_cannot_be_turned_on(tiny):
    with pytest.raises(UnsafeInputError) as e:
        load(tiny, tokenizer_config={"trust_remote_code": True})
    assert str(e.value) == "tokenizer_config={'trust_remote_code': True}: zoo never runs code shipped with a checkpoint"


def test_broken_tokenizer_json(tiny):
    (tiny / "tokenizer.json").write_text("{not json")
    with pytest.raises(CheckpointError) as e:
        load(tiny)
    assert str(e.value).startswith(f"{tiny}: cannot load the tokenizer: JSONDecodeError: Failed to parse tokenizer.json")


def test_failed_conversion_leaves_no_half_written_folder(tiny, tmp_path, monkeypatch):
    import zoo_registry.convert as convert_mod

    def disk_full(src, dst):
        raise OSError(28, "No space left on device", str(dst / "tokenizer.json"))

    monkeypatch.setattr(convert_mod, "copy_tokenizer", disk_full)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="No space left on device"):
        convert_mod.convert(tiny, out)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    monkeypatch.undo()
    convert_mod.convert(tiny, out)
    assert sorted(p.name for p in out.iterdir())[:2] == ["config.json", "generation_config.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # an ordinary folder, not mkdtemp's private one


def test_conversion_into_a_file_is_refused(tiny, tmp_path):
    from zoo_registry.convert import convert
    from zoo_registry.errors import ConfigError

    target = tmp_path / "out.safetensors"
    target.write_text("")
    with pytest.raises(ConfigError) as e:
        convert(tiny, target)
    assert str(e.value) == f"{target}: destination exists and is not a folder"


def test_mlx_lm_builtin_with_a_config_it_cannot_use(tmp_path):
    """mlx-lm's architectures have no schema; what its ModelArgs rejects still comes back as one line."""
    folder = tmp_path / "llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8, "num_hidden_layers": 1}))
    mx.save_safetensors(str(folder / "model.safetensors"), {"x": mx.zeros((2,))})
    message = ("TypeError: ModelArgs.__init__() missing 4 required positional arguments: 'intermediate_size', "
               "'num_attention_heads', 'rms_norm_eps', and 'vocab_size'")
    with pytest.raises(CheckpointError) as e:
        load_model(folder)
    assert str(e.value) == f"{folder}: mlx-lm could not load the checkpoint: {message}"
    with pytest.raises(CheckpointError) as e:
        plan(folder)
    assert str(e.value) == f"{folder}: mlx-lm could not build model_type 'llama' from config.json: {message}"


@pytest.mark.parametrize("read", ["evaluate", "cli"])
def test_a_weight_file_cut_after_mapping_names_the_folder(tmp_path, read):
    # the header check passed, then the file changed under the lazy map: MLX's own read error
    # ("[read] Unable to read from file.") must come out as a CheckpointError naming the folder
    import mlx.core as mx
    import mlx.nn as nn

    from zoo_registry.cli.pipeline import finish_loading
    from zoo_registry.loading.integrity import evaluate

    path = tmp_path / "model.safetensors"
    mx.save_safetensors(str(path), {"weight": mx.ones((256, 1024))})
    layer = nn.Linear(1024, 256, bias=False)
    layer.load_weights(list(mx.load(str(path)).items()))
    os.truncate(path, 200)
    with pytest.raises(CheckpointError) as e:
        if read == "evaluate":
            evaluate(layer, tmp_path)
        else:
            finish_loading(layer, types.SimpleNamespace(path=tmp_path, seconds=0.0))
    assert str(e.value).startswith(f"{tmp_path}: reading the weights failed: [read]")
    assert e.value.hint == "a weight file is damaged or changed while loading; download or convert it again"
