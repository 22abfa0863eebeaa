"""The tied-head check (``zoo_registry.tied_head``) on checkpoints saved by Tencent's own code.

Folders are written from the golden cases of ``tests/data/tencent_oracle`` (Tencent's
``save_pretrained`` key lists, weights rebuilt from their seeds), so "loads right" means "matches
Tencent's logits", not zoo's own numbers.
"""

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import mlx.core as mx
import numpy as np
import pytest

from zoo_registry import tied_head
from zoo_registry.convert import convert
from zoo_registry.errors import WeightsMismatchError, ZooWarning
from zoo_registry.loading import load_model, plan

from test_hunyuan_tencent_oracle import TOLERANCE, golden, write_checkpoint


def tied_checkpoint_without_flag(folder: Path) -> Path:
    """What zoo's former tied default saved: no lm_head.weight, and a config that omits the flag."""
    write_checkpoint("large_top1_cla", folder)
    config = json.loads((folder / "config.json").read_text())
    del config["tie_word_embeddings"]
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("strict", [True, False])
def test_a_missing_head_with_a_defaulted_flag_is_refused_with_the_fix(strict, tmp_path):
    folder = tied_checkpoint_without_flag(tmp_path / "old-tied")
    with pytest.raises(WeightsMismatchError) as e:
        load_model(folder, strict=strict)
    assert "lm_head.weight is missing and the config omits tie_word_embeddings, whose default for hunyuan is untied" in str(e.value)
    assert e.value.hint.startswith(f'set "tie_word_embeddings": true in {folder / "config.json"}')
    assert "strict" not in f"{e.value} {e.value.hint}"


def test_the_hint_is_the_fix(tmp_path):
    """Following the hint loads Tencent's model (the case was saved tied)."""
    folder = tied_checkpoint_without_flag(tmp_path / "old-tied")
    prompt, expected = golden("large_top1_cla")
    got = np.array(load_model(folder, config_overrides={"tie_word_embeddings": True})(mx.array([prompt]))[0])
    assert float(np.abs(got - expected).max()) < TOLERANCE


def test_a_stated_untied_config_without_head_never_suggests_no_strict(tmp_path):
    folder = tmp_path / "stated"
    write_checkpoint("large_top1_cla", folder, {"tie_word_embeddings": False})
    with pytest.raises(WeightsMismatchError) as e:
        load_model(folder)
    assert 'set "tie_word_embeddings": true' in e.value.hint and "strict" not in e.value.hint
    with pytest.warns(ZooWarning, match="1 missing"):  # stated untied + --no-strict: the user's explicit choice
        load_model(folder, strict=False, lazy=True)


def test_a_plan_says_loading_will_refuse(tmp_path):
    folder = tied_checkpoint_without_flag(tmp_path / "old-tied")
    notes = plan(folder).report.notes
    assert any("has no lm_head.weight and the config omits tie_word_embeddings" in n and '"tie_word_embeddings": true in' in n for n in notes)


def wrongly_tied(folder: Path) -> Path:
    write_checkpoint("large_tie_omitted", folder, {"tie_word_embeddings": True})
    return folder


def test_convert_writes_untied_after_an_automatic_untie(tmp_path):
    src = wrongly_tied(tmp_path / "src")
    with pytest.warns(ZooWarning, match="loaded it as an untied head"):
        convert(src, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "config.json").read_text())["tie_word_embeddings"] is False
    prompt, expected = golden("large_tie_omitted")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the converted folder states the truth: no warning
        got = np.array(load_model(tmp_path / "out")(mx.array([prompt]))[0])
    assert float(np.abs(got - expected).max()) < TOLERANCE


def test_the_warning_names_an_override_as_the_origin(tmp_path):
    folder = tmp_path / "c"
    write_checkpoint("large_tie_omitted", folder)  # config.json omits the flag; the caller says tied
    with pytest.warns(ZooWarning, match=r"the override tie_word_embeddings=True \(a card's config_overrides or the caller's\): "
                                        r"the config says the head is tied"):
        load_model(folder, config_overrides={"tie_word_embeddings": True}, lazy=True)


class FakeCheckpoint:
    """Headers only: a checkpoint whose head must never be read (tensors() raises)."""

    def __init__(self, names):
        self.path = Path("/nonexistent")
        self._specs = {n: SimpleNamespace(shape=(4, 2), dtype="float32") for n in names}

    def specs(self):
        return self._specs

    def tensors(self):
        raise AssertionError("the check read tensor data although it does not apply")


@pytest.mark.parametrize("names, normalised", [
    # embeddings under other names (GPT-2 style): the check does not apply, the head is not "absent-embed" untied
    (["transformer.wte.weight", "lm_head.weight"], {"tie_word_embeddings": True}),
    # an architecture whose normalised config has no tie flag
    (["model.embed_tokens.weight", "lm_head.weight"], {"tied": True}),
])
def test_the_check_is_opt_in_by_data(names, normalised):
    before = dict(normalised)
    tied_head.before_build(FakeCheckpoint(names), dict(normalised), normalised)
    assert normalised == before


def test_the_head_check_reads_only_the_shards_that_hold_the_two_tensors(tmp_path, monkeypatch):
    """A tied config with a saved head must not copy every pickle shard just to compare two tensors."""
    from safetensors.numpy import save_file

    from zoo_registry import checkpoint

    folder = tmp_path / "sharded"
    folder.mkdir()
    shards = {"model-00001-of-00002.safetensors": {"lm_head.weight": np.ones((4, 2), np.float32),
                                                   "model.embed_tokens.weight": np.ones((4, 2), np.float32)},
              "model-00002-of-00002.safetensors": {"model.norm.weight": np.ones(2, np.float32)}}
    for name, tensors in shards.items():
        save_file(tensors, str(folder / name))
    index = {"weight_map": {k: name for name, tensors in shards.items() for k in tensors}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    read = []
    real = checkpoint.file_tensors
    monkeypatch.setattr(checkpoint, "file_tensors", lambda path, staging=None: read.append(path.name) or real(path, staging))
    ckpt = checkpoint.open_checkpoint(folder)
    assert tied_head.untie_if_head_differs(ckpt, {"tie_word_embeddings": True}) is False  # an exact copy: stays tied
    assert read == ["model-00001-of-00002.safetensors"]
