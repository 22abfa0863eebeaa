"""Model cards: every shipped card validates; resolve/check/materialize behave and fail clearly."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from zoo_registry import card_requires, cards
from zoo_registry.errors import CheckpointNotFoundError, ConfigError, PluginError, SchemaError, UnknownNameError, UnsafeInputError
from zoo_registry.resources import resource_path

SHIPPED = sorted(resource_path("zoo_hunyuan:cards").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_card_validates_and_resolves(path, zoo_registry):
    card = cards.read_card(path, "plugin:hunyuan", path.parent).validate()
    assert card.name == path.stem
    resolved = cards.resolve(card.name, zoo_registry)
    assert resolved.path == path and resolved.origin == "plugin:hunyuan"
    assert card.data["sources"], "every fact on a shipped card cites a source"
    if card.source_kind == "hf":
        assert "revision" not in card.source  # no pinned revision anyone could not check


def test_shipped_cards_cover_the_family():
    names = {p.stem for p in SHIPPED}
    assert {"hunyuan-tiny", "hunyuan-large-instruct", "hunyuan-a13b-instruct"} <= names
    assert {f"hunyuan-{s}-instruct" for s in ("0.5b", "1.8b", "4b", "7b")} <= names


def test_a13b_card_counts_match_its_published_config():
    """The card's parameter counts follow from the official config values (80B / 13B in the README)."""
    data = cards.read_card(resource_path("zoo_hunyuan:cards/hunyuan-a13b-instruct.yaml")).data
    V, H, L, nh, nkv, hd, E, I, k = 128167, 4096, 32, 32, 8, 128, 64, 3072, 8
    per_layer = 2 * H * nh * hd + 2 * nkv * hd * H + 2 * hd + 2 * H + E * H + 3 * I * H
    experts = E * 3 * I * H
    assert data["parameters"]["total"] == V * H + H + L * (per_layer + experts)
    assert data["parameters"]["active"] == V * H + H + L * (per_layer + k * 3 * I * H)


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def user_cards(isolated_home, monkeypatch, zoo_registry):
    folder = isolated_home / "cards"
    monkeypatch.setenv("ZOO_CARDS_PATH", str(folder))
    folder.mkdir()
    zoo_registry._cards = None  # rebuild the catalogue with the new environment
    return folder


def _fresh(registry):
    registry._cards = None
    return registry


def test_user_card_is_found_and_shadows_nothing_else(user_cards, zoo_registry):
    _write(user_cards, "mine", """\
        name: mine
        architecture: hunyuan
        source: {path: ./weights}
        """)
    card = cards.resolve("mine", _fresh(zoo_registry))
    assert card.origin == f"user:{user_cards}"
    with pytest.raises(CheckpointNotFoundError, match=r"mine.yaml::\$\.source\.path: checkpoint folder .*weights does not exist"):
        cards.materialize(card)
    (user_cards / "weights").mkdir()
    assert cards.materialize(card) == user_cards / "weights"


def test_user_card_shadows_a_plugin_card(user_cards, zoo_registry):
    _write(user_cards, "tiny", """\
        name: hunyuan-tiny
        architecture: hunyuan
        source: {path: /nonexistent}
        """)
    card = _fresh(zoo_registry).cards().get("hunyuan-tiny")
    assert card.origin.startswith("user:") and card.shadows == ["plugin:hunyuan:hunyuan-tiny"]


def test_unknown_key_names_file_key_and_suggestion(user_cards, zoo_registry):
    _write(user_cards, "bad", """\
        name: bad
        architecture: hunyuan
        source: {hf_repo: tencent/Hunyuan-A13B-Instruct}
        contex_length: 4096
        """)
    with pytest.raises(SchemaError) as err:
        cards.resolve("bad", _fresh(zoo_registry))
    assert str(err.value) == f"{user_cards / 'bad.yaml'}::$.contex_length: unknown key (did you mean 'context_length'?)"


def test_source_must_be_one_kind(user_cards, zoo_registry):
    _write(user_cards, "two", """\
        name: two
        architecture: hunyuan
        source: {hf_repo: a/b, path: /x}
        """)
    with pytest.raises(SchemaError, match=r"two.yaml::\$\.source"):
        cards.resolve("two", _fresh(zoo_registry))


def test_missing_architecture_names_the_plugin_to_install(user_cards, zoo_registry):
    _write(user_cards, "llamaish", """\
        name: llamaish
        architecture: qwen9_moe
        source: {path: .}
        """)
    with pytest.raises(UnknownNameError) as err:
        cards.resolve("llamaish", _fresh(zoo_registry))
    assert "::$.architecture: model card 'llamaish' needs architecture 'qwen9_moe', which no installed plugin serves" in str(err.value)
    assert "install a zoo plugin that serves model_type 'qwen9_moe'" in err.value.hint


def test_missing_required_plugin_is_named(user_cards, zoo_registry):
    _write(user_cards, "needs", """\
        name: needs
        architecture: hunyuan
        source: {path: .}
        requires: {deepseek-zoo: ">=1.0"}
        """)
    with pytest.raises(PluginError) as err:
        cards.resolve("needs", _fresh(zoo_registry))
    assert str(err.value).endswith("::$.requires.deepseek-zoo: model card 'needs' needs zoo plugin 'deepseek-zoo' >=1.0, which is not installed")
    assert "install the Python package that provides the zoo plugin 'deepseek-zoo'" in err.value.hint


def test_too_old_plugin_says_how_to_upgrade(user_cards, zoo_registry):
    _write(user_cards, "future", """\
        name: future
        architecture: hunyuan
        source: {path: .}
        requires: {hunyuan: ">=99"}
        """)
    with pytest.raises(PluginError) as err:
        cards.resolve("future", _fresh(zoo_registry))
    assert "needs zoo plugin 'hunyuan' >=99, but version 0.1.0 is installed" in str(err.value)
    assert err.value.hint == "upgrade it: pip install -U 'zoo-mlx>=99'"


def test_disabled_plugin_is_reported_as_disabled(user_cards, monkeypatch):
    from zoo_registry.registry import Registry

    monkeypatch.setenv("ZOO_DISABLED_PLUGINS", "hunyuan")
    registry = Registry.discover()
    _write(user_cards, "disabled", """\
        name: disabled
        architecture: llama
        source: {path: .}
        requires: {hunyuan: ""}
        """)
    with pytest.raises(PluginError, match="needs zoo plugin 'hunyuan', which is disabled"):
        cards.resolve("disabled", registry)


def test_requires_python_packages_and_zoo(user_cards, zoo_registry):
    _write(user_cards, "pkgs", """\
        name: pkgs
        architecture: hunyuan
        source: {path: .}
        requires: {zoo: ">=0.1", mlx-lm: ">=0.1", hunyuan: ">=0.1,<1"}
        """)
    assert cards.resolve("pkgs", _fresh(zoo_registry)).name == "pkgs"


def test_bad_specifier_is_a_config_error(user_cards, zoo_registry):
    _write(user_cards, "spec", """\
        name: spec
        architecture: hunyuan
        source: {path: .}
        requires: {hunyuan: "at least 1"}
        """)
    with pytest.raises(ConfigError, match=r"requires\.hunyuan: 'at least 1' is not a PEP 440 version specifier"):
        cards.resolve("spec", _fresh(zoo_registry))


@pytest.mark.parametrize(
    "version, spec, ok",
    [
        ("0.1.0", ">=0.1", True), ("0.1.0", ">0.1", False), ("0.1.0", "==0.1", True), ("0.1.5", "==0.1.*", True),
        ("0.2", "==0.1.*", False), ("1.4.2", "~=1.4", True), ("2.0", "~=1.4", False), ("1.0", ">=0.5,<1", False),
        ("0.32.2", ">=0.32,<0.33", True), ("3.1", "!=3.1", False), ("3.1", "<=3.1.0", True),
    ],
)
def test_specifier_subset_agrees_with_packaging(version, spec, ok):
    assert cards.version_satisfies(version, spec) is ok
    assert card_requires._simple_satisfies(version, spec, "x") is ok


def test_plugin_card_may_not_point_outside_its_folder(tmp_path):
    folder = tmp_path / "plugin_cards"
    path = _write(folder, "escape", """\
        name: escape
        architecture: hunyuan
        source: {path: ../../etc}
        """)
    card = cards.read_card(path, "plugin:evil", folder.resolve())
    with pytest.raises(UnsafeInputError, match="outside its cards folder"):
        cards.materialize(card)
    inside = _write(folder, "inside", """\
        name: inside
        architecture: hunyuan
        source: {path: weights}
        """)
    (folder / "weights").mkdir()
    assert cards.materialize(cards.read_card(inside, "plugin:good", folder.resolve())) == folder / "weights"


def test_plugin_card_symlink_escape_is_refused(tmp_path):
    folder = tmp_path / "plugin_cards"
    path = _write(folder, "link", """\
        name: link
        architecture: hunyuan
        source: {path: weights}
        """)
    (folder / "weights").symlink_to(tmp_path)
    with pytest.raises(UnsafeInputError):
        cards.materialize(cards.read_card(path, "plugin:evil", folder.resolve()))


def test_generated_card_is_built_once_into_the_cache(isolated_home, zoo_registry, capfd):
    card = cards.resolve("hunyuan-tiny", zoo_registry)
    folder = cards.materialize(card)
    assert folder.is_relative_to(Path(os.environ["ZOO_CACHE_DIR"]))
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert "creating hunyuan-tiny" in capfd.readouterr().err  # one summary line when stderr is not a terminal
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert cards.materialize(card) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert capfd.readouterr().err == ""


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("ZOO_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cards.cache_dir() == tmp_path / "zoo"
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert cards.cache_dir() == tmp_path / "elsewhere"


def make_fake_hf_cache(hub: Path, repo_id: str, files: dict, commit: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    """The on-disk layout huggingface_hub writes: refs/main -> snapshots/<commit>/<files>."""
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    for rel, content in files.items():
        target = snapshot / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def test_hf_card_resolves_offline_from_the_cache_with_subfolder(user_cards, zoo_registry, isolated_home):
    hub = Path(os.environ["HF_HOME"]) / "hub"
    snapshot = make_fake_hf_cache(hub, "someone/multi", {"big/config.json": json.dumps({"model_type": "hunyuan"})})
    _write(user_cards, "multi", """\
        name: multi
        architecture: hunyuan
        source: {hf_repo: someone/multi, subfolder: big}
        """)
    assert cards.materialize(cards.resolve("multi", _fresh(zoo_registry))) == snapshot / "big"


def test_hf_card_not_cached_offline_fails_clearly(user_cards, zoo_registry):
    _write(user_cards, "absent", """\
        name: absent
        architecture: hunyuan
        source: {hf_repo: someone/not-downloaded}
        """)
    with pytest.raises(CheckpointNotFoundError) as err:
        cards.materialize(cards.resolve("absent", _fresh(zoo_registry)))
    assert "absent.yaml::$.source.hf_repo: someone/not-downloaded" in str(err.value)
