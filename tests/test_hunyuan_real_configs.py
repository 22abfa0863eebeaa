"""The real HunYuan release configs validate, build, and have the parameter counts the cards state.

Data: ``../shared/data/hunyuan/configs/`` next to the repository (copies of Tencent's published
``config.json`` files, one per repo@revision; see its README). Outside CI the tests skip when the
folder is absent; with ``CI`` set they fail, so a CI run can never pass without checking them.

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

from zoo_registry.cards import lookup
from zoo_registry.configs import validate_config
from zoo_registry.loading import build_model

from zoo_hunyuan.config import parameter_count

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT.parent / "shared" / "data" / "hunyuan" / "configs"
EXAMPLES = ROOT / "schemas" / "hunyuan" / "examples"

# real config file -> the card that serves that release (None: no card, e.g. a pretrained base)
CARD_OF = {
    "Tencent-Hunyuan_Hunyuan-A13B@2798f3c__models_config.json": "hunyuan-a13b-instruct",
    "tencent_Tencent-Hunyuan-Large@d51a383__Hunyuan-A52B-Instruct_config.json": "hunyuan-large-instruct",
    "mlx-community_Hunyuan-A52B-Instruct-3bit@main__config.json": "hunyuan-large-instruct",
    "tencent_Tencent-Hunyuan-Large@5c01bd4__Hunyuan-A50B-Pretrain_config.json": None,
    "tencent_Hy-MT2-7B@main__config.THIRD-PARTY-COPY.json": None,
}


def shared_configs() -> Path:
    if not CONFIGS.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{CONFIGS} is missing: CI must check the real HunYuan configs")
        pytest.skip(f"{CONFIGS} is not here (the shared data lives next to the repository)")
    return CONFIGS


def real_config_files():
    if not CONFIGS.is_dir():
        return sorted(CARD_OF)  # the test itself skips or fails
    return sorted(p.name for p in CONFIGS.iterdir() if p.name.endswith(".json") and "config" in p.name
                  and not p.name.endswith(("generation_config.json", "tokenizer_config.json")))


def card_named(name: str):
    card = lookup(name)
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
    # embeddings 128167*4096 (tied: once) + final norm 4096 + 32 layers x (q, o 4096*4096; k, v 4096*1024;
    # QK-norm 2*128; two norms 2*4096; MLP 3*4096*14336) = 524,972,032 + 4,096 + 32 * 218,112,256
    assert parameter_count(cfg) == 7_504_568_320


def test_large_card_points_at_a_folder_zoo_can_read():
    """The bfloat16 folder holds only pickles; the card takes the FP8 safetensors folder."""
    source = card_named("hunyuan-large-instruct").data["source"]
    assert source == {"hf_repo": "tencent/Tencent-Hunyuan-Large", "subfolder": "Hunyuan-A52B-Instruct-FP8"}


@pytest.mark.parametrize("size, head_dim", [("0.5b", 128), ("4b", 128)])
def test_dense_cards_state_head_dim_where_it_is_not_hidden_over_heads(size, head_dim):
    assert card_named(f"hunyuan-{size}-instruct").data["config_overrides"]["head_dim"] == head_dim
