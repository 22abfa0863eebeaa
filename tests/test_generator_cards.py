"""A plugin's generator card (``source.generate``), as the plugin guide documents its contract,
with zoo-llama's ``zoo-llama-tiny`` as the plugin: cache key, reuse, progress, a leftover folder."""

import os
from pathlib import Path

import pytest

from zoo_registry.card_sources import generated_folder, materialize
from zoo_registry.errors import PluginError
from zoo_registry.registry import Registry


@pytest.fixture
def card(isolated_home):
    return Registry.discover().cards().get("zoo-llama-tiny")


def test_the_folder_is_keyed_by_seed_and_generator_version(card, monkeypatch):
    import zoo_llama.tiny

    folder = generated_folder(card)
    assert folder.parent == Path(os.environ["ZOO_CACHE_DIR"]) / "generated" / "zoo-llama-tiny" and folder.name.startswith("seed0-")
    monkeypatch.setitem(card.source, "seed", 1)
    assert generated_folder(card).name.startswith("seed1-")
    monkeypatch.setitem(card.source, "seed", 0)
    monkeypatch.setattr(zoo_llama.tiny, "GENERATOR_VERSION", zoo_llama.tiny.GENERATOR_VERSION + 1)
    assert generated_folder(card) != folder  # new files, new folder: an old copy is never reused


def test_built_once_with_progress_then_reused(card):
    steps = []
    folder = materialize(card, progress=lambda done, total, what: steps.append((done, total)))
    assert steps[0] == (0, 2) and steps[-1] == (2, 2)
    stamp = (folder / "config.json").stat().st_mtime_ns
    assert materialize(card, progress=lambda *a: steps.append("again")) == folder and "again" not in steps
    assert (folder / "config.json").stat().st_mtime_ns == stamp
    assert not [p for p in folder.parent.iterdir() if p != folder]  # no temporary folder left behind


def test_a_leftover_folder_without_config_is_a_clear_error(card):
    folder = generated_folder(card)
    folder.mkdir(parents=True)
    with pytest.raises(PluginError, match=r"zoo-llama-tiny\.yaml::\$\.source\.generate: .* exists but holds no config\.json") as e:
        materialize(card)
    assert e.value.hint == f"remove {folder} (an interrupted generation left it) and try again"
