"""The dense HunYuan cards state parameter counts that zoo's counter and the built model agree on.

zoo's tests have no complete copy of the 0.5B/1.8B/4B/7B release configs (see the cards). Each
card states the sizes of its release's ``config.json`` (as its cited sources quote them) in its
description; this test reads them from the card itself, puts them into the dense v1 config example
(``schemas/examples/hunyuan-dense-7b.json``, verbatim from the 7B's config where visible) with the
card's ``config_overrides``, validates that through the plugin, and checks that the card's
``parameters`` equal both zoo's parameter counter (:func:`zoo_registry.configs.parameter_count`,
HunYuan's own count) and the sum of the shapes of the model built lazily from that config (MLX
evaluates no weight, so a 7B model costs no memory). The legacy 7B-0124 card is checked on its own
config example (verbatim from its release).
"""

import json
import math
import re
from pathlib import Path

import pytest
from mlx.utils import tree_flatten

from zoo_registry.cards import lookup
from zoo_registry.configs import parameter_count, validate_config
from zoo_registry.loading import build_model

EXAMPLES = Path(__file__).resolve().parent.parent / "plugin" / "zoo_hunyuan" / "schemas" / "examples"
SIZES = {  # config key -> how the cards write it in their description
    "hidden_size": r"hidden (\d+)",
    "num_hidden_layers": r"(\d+) layers",
    "num_attention_heads": r"(\d+) heads",
    "num_key_value_heads": r"(\d+) KV heads",
    "head_dim": r"head_dim (\d+)",
    "intermediate_size": r"\bI (\d+)",
    "vocab_size": r"vocab (\d+)",
}


def example(name: str) -> dict:
    config = json.loads((EXAMPLES / name).read_text())
    config.pop("$comment", None)
    return config


def card_config(card) -> dict:
    if card.name == "hunyuan-7b-instruct-0124":
        return example("hunyuan-7b-legacy.json")
    text = " ".join(card.data["description"].split())
    sizes = {key: int(re.search(pattern, text).group(1)) for key, pattern in SIZES.items()}
    assert "tied embeddings" in text
    return {**example("hunyuan-dense-7b.json"), **sizes, "tie_word_embeddings": True, **card.data.get("config_overrides", {})}


@pytest.mark.parametrize("name", ["hunyuan-0.5b-instruct", "hunyuan-1.8b-instruct", "hunyuan-4b-instruct",
                                  "hunyuan-7b-instruct", "hunyuan-7b-instruct-0124"])
def test_dense_card_parameter_counts(zoo_registry, name):
    card = lookup(name, zoo_registry)
    arch, config = validate_config(card_config(card), f"{name} config")
    assert card.data["architecture"] in (arch.name, *arch.aliases)
    from zoo_hunyuan.config import parameter_count as hunyuan_count

    built = sum(math.prod(v.shape) for _, v in tree_flatten(build_model(arch, config).parameters()))
    assert parameter_count(arch, config) == hunyuan_count(config) == built
    assert card.data["parameters"] == {"total": built, "active": built}
    billions = float(re.search(r"(\d+(?:\.\d+)?)b", name).group(1))
    assert abs(built / 1e9 - billions) / billions < 0.1, "the count should match the size in the release's name"
