"""The real HunYuan release configs validate, build, and have the parameter counts the cards state.

Data: the folder ``$ZOO_HUNYUAN_DATA``, else ``shared/data/hunyuan`` next to the repository or next
to its parent folder (a git worktree under ``wt/``), whose ``configs/`` holds copies of Tencent's
published ``config.json`` files, one per repo@revision (see its README). Outside CI the tests skip
when no such folder exists; with ``CI`` set they fail, so a CI run can never pass without them.

For every complete real config (``*config.json``; ``*.PARTIAL.txt`` excerpts are not configs) the
test validates it with the installed plugin (schema + normalize), builds zoo's model lazily (MLX
arrays are never evaluated, so a 389B-parameter model costs no memory), counts the parameters of
the built modules and compares them with the plugin's :func:`parameter_count` and with the card
that serves the release. The active count is recomputed from the config: everything but the
routed experts, plus ``moe_topk`` experts per layer.
"""

import json
import os
from pathlib import Path

import pytest
from mlx.utils import tree_flatten

from zoo_registry import get_registry
from zoo_registry.cards import lookup
from zoo_registry.configs import validate_config
from zoo_registry.loading import build_model

from zoo_hunyuan.config import parameter_count

ROOT = Path(__file__).resolve().parent.parent


def data_candidates():
    """Where the real HunYuan files may be, in order: ``$ZOO_HUNYUAN_DATA``, then next to the checkout."""
    env = os.environ.get("ZOO_HUNYUAN_DATA")
    return [*([Path(env)] if env else []), ROOT.parent / "shared" / "data" / "hunyuan", ROOT.parent.parent / "shared" / "data" / "hunyuan"]


def find_configs():
    return next((d / "configs" for d in data_candidates() if (d / "configs").is_dir()), None)


CONFIGS = find_configs()
EXAMPLES = ROOT / "plugin" / "zoo_hunyuan" / "schemas" / "examples"

# real config file -> the card that serves that release (None: no card, e.g. a pretrained base)
CARD_OF = {
    "Tencent-Hunyuan_Hunyuan-A13B@2798f3c__models_config.json": "hunyuan-a13b-instruct",
    "tencent_Tencent-Hunyuan-Large@d51a383__Hunyuan-A52B-Instruct_config.json": "hunyuan-large-instruct",
    "mlx-community_Hunyuan-A52B-Instruct-3bit@main__config.json": "hunyuan-large-instruct",
    "tencent_Tencent-Hunyuan-Large@5c01bd4__Hunyuan-A50B-Pretrain_config.json": None,
    "tencent_Hy-MT2-7B@main__config.THIRD-PARTY-COPY.json": None,
}


def shared_configs() -> Path:
    if CONFIGS is None:
        where = ", ".join(str(d / "configs") for d in data_candidates())
        if os.environ.get("CI"):
            pytest.fail(f"the real HunYuan configs are missing (looked in {where}): CI must check them")
        pytest.skip(f"the real HunYuan configs are not here (looked in {where}; set ZOO_HUNYUAN_DATA)")
    return CONFIGS


def real_config_files():
    if CONFIGS is None:
        return sorted(CARD_OF)  # the test itself skips or fails
    return sorted(p.name for p in CONFIGS.iterdir() if p.name.endswith(".json") and "config" in p.name
                  and not p.name.endswith(("generation_config.json", "tokenizer_config.json")))


def card_named(name: str):
    card = lookup(name, get_registry())
    assert card is not None, f"no card named {name!r}"
    return card


def active_count(cfg: dict) -> int:
    D, total = cfg["hidden_size"], parameter_count(cfg)
    for i in range(cfg["num_hidden_layers"]):
        experts = cfg["num_experts"][i]
        if experts > 1:
            total -= (experts - cfg["moe_topk"][i]) * 3 * D * cfg["moe_intermediate_size"][i]
    return total


def test_every_real_config_is_known():
    shared_configs()
    assert real_config_files() == sorted(CARD_OF)


@pytest.mark.parametrize("name", sorted(CARD_OF))
def test_real_config_builds_with_the_cards_parameter_count(name):
    raw = json.loads((shared_configs() / name).read_text())
    arch, cfg = validate_config(dict(raw), name)
    model = build_model(arch, cfg)  # lazy: nothing is evaluated
    built = sum(v.size for _, v in tree_flatten(model.parameters()))
    assert built == parameter_count(cfg)
    card_name = CARD_OF[name]
    if card_name is None:
        return
    card = card_named(card_name)
    assert card.data["parameters"]["total"] == built, f"{card_name}: card total differs from the real config {name}"
    assert card.data["parameters"]["active"] == active_count(cfg)
    assert card.data["architecture"] in (arch.name, *arch.aliases)


@pytest.mark.parametrize("example, real", [
    ("hunyuan-a13b-instruct.json", "Tencent-Hunyuan_Hunyuan-A13B@2798f3c__models_config.json"),
    ("hunyuan-large.json", "tencent_Tencent-Hunyuan-Large@d51a383__Hunyuan-A52B-Instruct_config.json"),
])
def test_example_configs_are_the_real_files(example, real):
    ours = json.loads((EXAMPLES / example).read_text())
    ours.pop("$comment")
    assert ours == json.loads((shared_configs() / real).read_text())


def test_legacy_7b_config_validates_with_n_group_false_and_per_layer_lists():
    raw = json.loads((EXAMPLES / "hunyuan-7b-legacy.json").read_text())
    raw.pop("$comment")
    assert raw["n_group"] is False and raw["moe_topk"] == [1] * 32 and raw["pad_id"] == -1
    arch, cfg = validate_config(raw, "hunyuan-7b-legacy.json")
    assert arch.name == "hunyuan" and cfg["num_experts"] == [1] * 32


def test_legacy_7b_example_names_every_key_it_filled_in():
    """The real excerpt ends after norm_topk_prob: every later key is listed as a guess in $comment."""
    raw = json.loads((EXAMPLES / "hunyuan-7b-legacy.json").read_text())
    comment = raw.pop("$comment")
    keys = list(raw)
    filled = keys[keys.index("norm_topk_prob") + 1:]
    marked = comment.split("FILLED IN, NOT FROM TENCENT'S FILE")[1].split("): ", 1)[1].split(". ")[0].split(", ")
    assert marked == filled


@pytest.mark.parametrize("value", [True, "false", 1.5])
def test_n_group_takes_an_integer_null_or_false_only(value):
    from zoo_registry.errors import ConfigError

    raw = json.loads((EXAMPLES / "hunyuan-7b-legacy.json").read_text())
    raw.pop("$comment")
    with pytest.raises(ConfigError, match=r"\$\.n_group"):
        validate_config(dict(raw, n_group=value), "hunyuan-7b-legacy.json")


def test_data_folder_is_found_through_the_environment(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    monkeypatch.setenv("ZOO_HUNYUAN_DATA", str(tmp_path))
    assert find_configs() == tmp_path / "configs"


def test_large_card_points_at_a_folder_zoo_can_read():
    """The bfloat16 folder holds only pickles; the card takes the FP8 safetensors folder."""
    source = card_named("hunyuan-large-instruct").data["source"]
    assert source == {"hf_repo": "tencent/Tencent-Hunyuan-Large", "subfolder": "Hunyuan-A52B-Instruct-FP8"}


@pytest.mark.parametrize("size", ["0.5b", "1.8b", "4b"])
def test_dense_cards_spell_the_special_tokens_of_the_release(size):
    """The names are the release's special_tokens_map.json; the bar is U+FF5C (see the cards' sources).

    The stored copy of that file came from a text rendering of the Hugging Face page, which shows
    ASCII bars; llama.cpp's template detection (src/llama-chat.cpp) spells the same tokens with
    U+FF5C, the DeepSeek-V3 convention this tokenizer follows.
    """
    real = json.loads((shared_configs() / "tencent_Hunyuan-0.5B-Instruct@c0aadf7__special_tokens_map.json").read_text(encoding="utf-8"))
    card = card_named(f"hunyuan-{size}-instruct").data
    text = card["description"] + " ".join(card["sources"])
    eos = real["eos_token"].replace("|", "\uff5c")
    assert f"{eos}, id 120020" in " ".join(card["description"].split()) and "\uff5c" in eos
    for token in (real["bos_token"], real["pad_token"]):
        assert token.replace("|", "\uff5c") in text
    assert not any("fixture" in source and "http" not in source for source in card["sources"])
