"""Keys a HunYuan config may omit take the defaults of the model's reference implementation.

- ``model_type: hunyuan``: Tencent's ``HunYuanConfig``. Its resolved values are read from the
  ``tencent_config.json`` files in ``tests/data/tencent_oracle/`` (written by Tencent's own
  ``save_pretrained`` from configs that omit keys on purpose; see
  ``tests/oracles/tencent_hunyuan.py``), so the expected values are Tencent's, not zoo's.
- ``hunyuan_v1_moe`` / ``hunyuan_v1_dense``: transformers' ``HunYuanMoEV1Config`` /
  ``HunYuanDenseV1Config``, instantiated here.

The load report names every behaviour-changing key that was absent and the default taken.
"""

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from zoo_registry.configs import validate_config
from zoo_registry.runtime.moe import route

from zoo_hunyuan.config import DEFAULTS, NOTES_KEY, normalize, renormalizes

ORACLE = Path(__file__).resolve().parent / "data" / "tencent_oracle"
CASES = sorted(p.name for p in ORACLE.iterdir() if (p / "tencent_config.json").is_file())
BEHAVIOUR = ("tie_word_embeddings", "use_qk_norm", "use_mixed_mlp_moe", "use_cla", "cla_share_factor", "rms_norm_eps",
             "rope_theta", "attention_bias", "num_key_value_heads")
SMALL = {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4}


@pytest.mark.parametrize("case", CASES)
def test_hunyuan_defaults_are_tencents(case):
    given = json.loads((ORACLE / case / "config.json").read_text())
    tencent = json.loads((ORACLE / case / "tencent_config.json").read_text())
    _, cfg = validate_config(given, f"{case}/config.json")
    for key in BEHAVIOUR:
        assert cfg[key] == tencent[key], f"{case}: {key} is {cfg[key]!r}, Tencent's HunYuanConfig says {tencent[key]!r}"
    shared = tencent["num_shared_expert"]
    assert cfg["num_shared_expert"] == (shared if isinstance(shared, list) else [shared] * cfg["num_hidden_layers"])


def test_an_omitted_key_is_noted_with_the_default_taken():
    given = json.loads((ORACLE / "large_defaults_untied" / "config.json").read_text())
    _, cfg = validate_config(given, "config.json")
    assert cfg[NOTES_KEY] == [
        "the config omits use_cla: took false, Tencent's HunYuanConfig's default",
        "the config omits tie_word_embeddings: took false, Tencent's HunYuanConfig's default: the LM head is its own lm_head.weight",
        "the config omits use_qk_norm: took false, Tencent's HunYuanConfig's default",
        "the config omits use_mixed_mlp_moe: took false, Tencent's HunYuanConfig's default",
    ]
    assert normalize(cfg) == cfg  # idempotent: the notes survive a second pass


def test_a_config_stating_every_switch_gets_no_notes():
    _, cfg = validate_config(json.loads((ORACLE / "large_top1_cla" / "config.json").read_text()), "config.json")
    assert cfg[NOTES_KEY] == []


@pytest.mark.parametrize("model_type, cls", [("hunyuan_v1_moe", "HunYuanMoEV1Config"), ("hunyuan_v1_dense", "HunYuanDenseV1Config")])
def test_transformers_model_types_take_transformers_defaults(model_type, cls):
    import transformers

    reference = getattr(transformers, cls)()
    cfg = normalize({"model_type": model_type, **SMALL})
    for key in ("tie_word_embeddings", "rms_norm_eps", "attention_bias"):
        assert cfg[key] == getattr(reference, key), key
    if model_type == "hunyuan_v1_moe":
        assert cfg["num_experts"] == [reference.num_experts] * 2 and cfg["moe_topk"] == [reference.moe_topk] * 2
        assert cfg["use_qk_norm"] and cfg["use_mixed_mlp_moe"]  # transformers always builds QK-norm and the shared MLP
        assert cfg["moe_renormalize"]  # HunYuanMoEV1Gate always divides by the sum of the top-k weights
    else:
        assert cfg["use_qk_norm"] and not cfg["use_cla"]
    assert DEFAULTS[model_type]["tie_word_embeddings"] is False
    # only keys transformers' config class has are noted; its models hard-wire QK-norm, shared MLP, no CLA
    noted = {n.split(" omits ")[1].split(":")[0] for n in cfg[NOTES_KEY]}
    assert "tie_word_embeddings" in noted and not noted & {"use_qk_norm", "use_mixed_mlp_moe", "use_cla", "num_shared_expert"}


@pytest.mark.parametrize("model_type, moe_topk, expected", [
    ("hunyuan", 1, False),  # Tencent: moe_topk == 1 -> top1gating, raw probability
    ("hunyuan", None, False),  # absent: the default 1
    ("hunyuan", [1, 1], True),  # a list is never == 1 -> topkgating, renormalised even for k = 1
    ("hunyuan", [8, 8], True),
    ("hunyuan", 2, True),  # Large's code: topkgating(logits, 2)
    ("hunyuan_v1_moe", 1, True),  # transformers always renormalises
])
def test_the_form_of_moe_topk_picks_the_gate(model_type, moe_topk, expected):
    assert renormalizes(model_type, moe_topk) is expected
    extra = {} if moe_topk is None else {"moe_topk": moe_topk}
    assert normalize({"model_type": model_type, **SMALL, "num_experts": 8, **extra})["moe_renormalize"] is expected


def test_route_renormalises_a_single_expert_to_weight_one():
    logits = mx.array(np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32))
    probs = np.array(mx.softmax(logits, axis=-1))
    inds, raw = route(logits, 1)
    _, renorm = route(logits, 1, renormalize=True)
    assert np.allclose(np.array(raw)[:, 0], probs.max(axis=-1)) and np.allclose(np.array(renorm), 1.0)
    _, top2 = route(logits, 2, renormalize=False)  # top-k without renormalisation: the raw probabilities
    assert np.allclose(np.sort(np.array(top2), axis=-1), np.sort(probs, axis=-1)[:, -2:])


def test_pad_id_minus_one_validates():
    _, cfg = validate_config({"model_type": "hunyuan", **SMALL, "pad_id": -1}, "config.json")
    assert cfg["pad_id"] == -1


def test_hunyuan_tiny_states_every_behaviour_key():
    """hunyuan-tiny's generated config relies on no default (so no default change can alter it)."""
    from zoo_hunyuan import tiny

    cfg = normalize({**tiny.config(), "vocab_size": tiny.VOCAB_SIZE})
    assert cfg[NOTES_KEY] == [] and cfg["moe_renormalize"] is False  # integer moe_topk 1: Large's top-1 gate
