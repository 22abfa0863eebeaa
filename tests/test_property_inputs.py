"""Property-based tests: whatever a stranger writes, zoo either accepts it or raises a ZooError.

Hypothesis generates configs, cards, rule files, JSON/YAML text and safetensors headers, mostly
near the valid ones (so that deep code paths are reached) with odd values mixed in: wrong types,
NaN/inf, negative and huge numbers, list lengths off by one, unknown keys. The property is always
the same: the call returns, or raises a :class:`ZooError`; any other exception is a bug.

A config that validates and describes a small model is also built and run: its parameter count
must equal :func:`zoo_hunyuan.config.parameter_count` (the number the size limit is checked
against) and a forward pass must give logits of the right shape. Runs are bounded
(``max_examples``) and derandomized, so the suite stays fast and deterministic.
"""

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from zoo_registry.errors import ZooError

BOUNDED = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])

WEIRD = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.lists(st.integers(min_value=-3, max_value=9), max_size=6),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


def sometimes_weird(typical):
    return st.one_of(typical, typical, typical, WEIRD)


def small(lo, hi):
    return sometimes_weird(st.integers(min_value=lo, max_value=hi))


def per_layer(lo, hi):
    return st.one_of(st.integers(min_value=lo, max_value=hi), st.lists(st.integers(min_value=lo, max_value=hi), min_size=0, max_size=5))


# Mutations: a key set to a strange value, deleted, or pushed just past a limit.
def mutate(draw, data: dict, keys, extra_values=()):
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        key = draw(st.sampled_from(sorted(keys)))
        how = draw(st.sampled_from(["weird", "delete", "edge"]))
        if how == "delete":
            data.pop(key, None)
        elif how == "edge":
            data[key] = draw(st.sampled_from([0, -1, 1, 2, 3, 5, 10**6, 2**31, [1], [], [1, 2, 3, 4, 5], 0.5, *extra_values]))
        else:
            data[key] = draw(WEIRD)
    return data


VALID_ROPES = [
    None,
    {"type": "dynamic", "alpha": 1000.0, "factor": 1.0},
    {"type": "linear", "factor": 2.0},
    {"type": "dynamic", "factor": 2.0},  # classic dynamic NTK: needs max_position_embeddings
    {"rope_type": "ntk_alpha", "alpha": 50.0},
    {"type": "default"},
]
ROPE = st.one_of(
    st.sampled_from(VALID_ROPES),
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["dynamic", "linear", "default", "ntk_alpha", "yarn", "Dynamic"]) | WEIRD,
            "rope_type": st.sampled_from(["dynamic", "linear", "default"]),
            "alpha": st.one_of(st.floats(min_value=-2, max_value=2000, allow_nan=False), st.just(0), WEIRD),
            "factor": st.one_of(st.floats(min_value=-1, max_value=8, allow_nan=False), WEIRD),
            "surprise": st.integers(),
        },
    ),
)


@st.composite
def CONFIGS(draw):
    """A coherent small HunYuan config (often with mutations), so deep checks and the build are reached."""
    model_type = draw(st.sampled_from(["hunyuan", "hunyuan_v1_moe", "hunyuan_v1_dense"]))
    dense = model_type == "hunyuan_v1_dense"
    layers = draw(st.integers(min_value=1, max_value=4))
    heads = draw(st.sampled_from([1, 2, 4, 8]))
    kv = draw(st.sampled_from([d for d in (1, 2, 4, 8) if heads % d == 0]))
    head_dim = draw(st.sampled_from([4, 8, 16]))
    cfg = {
        "model_type": model_type,
        "vocab_size": draw(st.integers(min_value=4, max_value=40)),
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "intermediate_size": draw(st.sampled_from([4, 8, 16])),
        "rope_theta": draw(st.sampled_from([10000.0, 1e6, 500.0])),
        "max_position_embeddings": 64,
    }
    if draw(st.booleans()):
        cfg["hidden_size"] = heads * head_dim
    else:
        cfg["hidden_size"] = draw(st.sampled_from([8, 16, 24, 32]))
        cfg[draw(st.sampled_from(["head_dim", "attention_head_dim"]))] = head_dim
    if not dense:
        experts = draw(st.integers(min_value=1, max_value=4))
        cfg["num_experts"] = experts if draw(st.booleans()) else [experts] * layers
        topk = draw(st.integers(min_value=1, max_value=experts))
        cfg["moe_topk"] = topk if draw(st.booleans()) else [topk] * layers
        cfg["num_shared_expert"] = draw(st.integers(min_value=0, max_value=1))
        cfg["use_mixed_mlp_moe"] = draw(st.booleans())
        if draw(st.booleans()):
            cfg["moe_intermediate_size"] = draw(st.sampled_from([4, 8]))
        if draw(st.booleans()):
            cfg.update(use_cla=True, cla_share_factor=draw(st.integers(min_value=1, max_value=layers)))
    for key in ("use_qk_norm", "attention_bias", "tie_word_embeddings"):
        if draw(st.booleans()):
            cfg[key] = draw(st.booleans())
    where = draw(st.sampled_from(["rope_scaling", "rope_parameters"]))
    cfg[where] = draw(ROPE)
    keys = set(cfg) | {"cla_share_factor", "use_cla", "num_experts", "moe_topk", "head_dim", "rms_norm_eps", "cla_share_factr",
                       "auto_map", "hidden_act", "quantization", "model_type"}
    return mutate(draw, cfg, keys, extra_values=(layers + 1, heads + 1, "silu", {"bits": 4, "group_size": 64}))


@BOUNDED
@given(CONFIGS())
def test_any_config_validates_or_raises_zoo_error_and_small_valid_ones_build_and_run(config):
    from zoo_registry.configs import validate_config

    try:
        arch, cfg = validate_config(json.loads(json.dumps(config, allow_nan=True)), "config.json")
    except ZooError as e:
        event(f"refused: {type(e).__name__}")
        return
    from zoo_hunyuan.config import normalize, parameter_count

    assert normalize(cfg) == cfg  # idempotent
    count = parameter_count(cfg)
    if count > 2_000_000 or "quantization" in cfg:
        event("valid, not built")
        return
    event("valid, built and run")
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from zoo_registry.loading import build_model

    model = build_model(arch, cfg)
    assert sum(v.size for _, v in tree_flatten(model.parameters())) == count
    logits = model(mx.array([[0, cfg["vocab_size"] - 1]]))
    assert logits.shape == (1, 2, cfg["vocab_size"])
    assert bool(mx.isfinite(logits).all())


# -- model cards ---------------------------------------------------------------------------------

NAMES = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,12}", fullmatch=True)
SOURCES = st.one_of(
    st.fixed_dictionaries({"hf_repo": st.sampled_from(["tencent/Hunyuan-A13B-Instruct", "a/b", "no-slash", "../x/y"])},
                          optional={"revision": st.sampled_from(["main", "v1/x", "-bad"]), "subfolder": st.sampled_from(["sub", "a/b", "../up"])}),
    st.fixed_dictionaries({"path": st.sampled_from([".", "..", "../../..", "/", "~", "sub/dir", "sub/../..", "loop", "dangling", "inside"])}),
    st.fixed_dictionaries({"generate": st.sampled_from(["zoo_hunyuan.tiny:missing", "no_such_module:f", "bad ref", "os:getcwd"])},
                          optional={"seed": st.integers(min_value=-1, max_value=3)}),
)


@st.composite
def CARDS(draw):
    """A schema-valid card (often mutated): name, architecture, source, requires, ..."""
    card = {
        "name": draw(NAMES),
        "architecture": draw(st.sampled_from(["hunyuan", "hunyuan_v1_dense", "llama", "nonesuch"])),
        "source": draw(SOURCES),
    }
    if draw(st.booleans()):
        card["requires"] = draw(st.dictionaries(
            st.sampled_from(["hunyuan", "zoo", "mlx-lm", "no-such-plugin", "bad name!"]),
            st.sampled_from(["", ">=0.1", ">=99", "<0.0.1", "~=1", "==0.1.*", "garbage spec"]), max_size=2))
    if draw(st.booleans()):
        card["aliases"] = draw(st.lists(NAMES, max_size=2, unique=True))
    if draw(st.booleans()):
        card["quantization"] = {"bits": draw(st.sampled_from([2, 4, 8, 7])), "group_size": draw(st.sampled_from([32, 64, 48]))}
    if draw(st.booleans()):
        card["config_overrides"] = {"max_position_embeddings": draw(st.integers(min_value=-1, max_value=10**6))}
    return mutate(draw, card, set(card) | {"parameters", "context_length", "description", "unexpected", "tags"})


def card_folder(tmp_path_factory):
    """A cards folder with the paths the strategies name: a sub-folder, a symlink loop, a dangling link."""
    folder = tmp_path_factory.mktemp("cards")
    (folder / "sub" / "dir").mkdir(parents=True)
    (folder / "inside").mkdir()
    (folder / "loop").symlink_to(folder / "loop")
    (folder / "dangling").symlink_to(folder / "nowhere")
    return folder


def card_file(card, tmp_path_factory):
    """``(folder, path)``: ``card`` written as ``card.yaml`` into a fresh :func:`card_folder`."""
    folder = card_folder(tmp_path_factory)
    path = folder / "card.yaml"
    path.write_text(yaml.safe_dump(card, allow_unicode=True))
    return folder, path


@BOUNDED
@given(card=CARDS())
def test_any_card_resolves_or_raises_zoo_error(card, tmp_path_factory):
    from zoo_registry.cards import read_card
    from zoo_registry.registry import get_registry

    folder, path = card_file(card, tmp_path_factory)
    try:
        parsed = read_card(path, f"user:{folder}")
        parsed.validate()
        parsed.check(get_registry())
        if parsed.source_kind == "path":
            parsed.local_path()
        event("card accepted")
    except ZooError as e:
        event(f"refused: {type(e).__name__}")


@BOUNDED
@given(card=CARDS())
def test_any_card_from_a_plugin_never_escapes_its_folder(card, tmp_path_factory):
    """A plugin card (trusted root = its folder) either stays inside it or is refused."""
    import os

    from zoo_registry.cards import read_card

    folder, path = card_file(card, tmp_path_factory)
    try:
        parsed = read_card(path, "plugin:toy", folder.resolve())
        parsed.validate()
        if parsed.source_kind != "path":
            return
        target = os.path.realpath(parsed.local_path())
    except ZooError:
        return
    root = os.path.realpath(folder)
    assert target == root or target.startswith(root + os.sep)


# -- rule files ----------------------------------------------------------------------------------

SHIPPED_RULES = sorted(Path(__file__).resolve().parent.parent.joinpath("plugin", "zoo_hunyuan", "rules").glob("*.yaml"))
RULE_KEYS = ["name", "op", "from", "to", "match", "over", "count", "where", "suffixes", "when", "axis", "sizes", "axes", "shape",
             "params", "export", "description"]


@st.composite
def RULE_FILES(draw):
    """A shipped rule file, cut down and mutated: rules stay close to real ones, so checks run deep."""
    data = yaml.safe_load(draw(st.sampled_from(SHIPPED_RULES)).read_text())
    rules = data["rules"]
    picked = draw(st.lists(st.integers(min_value=0, max_value=len(rules) - 1), min_size=0, max_size=4))
    data["rules"] = [dict(rules[i]) for i in picked]
    for rule in data["rules"]:
        if draw(st.integers(min_value=0, max_value=3)) == 0:
            mutate(draw, rule, RULE_KEYS, extra_values=("config.num_experts", "config.nope", "{layer}", "model.{x}.{x}", "(unclosed",
                                                        ["a.{layer}", "b.{expert}"], "split_grouped_qkv", "no_such_op"))
    if draw(st.integers(min_value=0, max_value=5)) == 0:
        mutate(draw, data, ["rules", "version", "defaults", "description", "extra"])
    return data


@BOUNDED
@given(rules=RULE_FILES())
def test_any_rule_file_loads_or_raises_zoo_error(rules, tmp_path_factory):
    from zoo_registry import get_registry
    from zoo_registry.sanitize.rules import load_rules

    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True))
    try:
        event(f"accepted ({len(load_rules(path, get_registry()))} rules)")  # the plugin's ops are known
    except ZooError as e:
        event(f"refused: {type(e).__name__}")


# -- raw text and bytes --------------------------------------------------------------------------


@BOUNDED
@given(text=st.one_of(st.text(max_size=200), st.text(alphabet='{}[]":,0123456789.eE-+ \ntrufalsn&*!|>', max_size=200)))
def test_any_text_parses_or_raises_zoo_error(text, tmp_path_factory):
    from zoo_registry.files import read_json, read_yaml

    folder = tmp_path_factory.mktemp("text")
    for name, reader in (("f.json", read_json), ("f.yaml", read_yaml)):
        path = folder / name
        path.write_text(text, encoding="utf-8", errors="surrogatepass") if False else path.write_bytes(text.encode("utf-8", "replace"))
        try:
            reader(path)
        except ZooError:
            pass


@BOUNDED
@given(header=st.one_of(
    st.binary(max_size=64),
    st.builds(lambda obj, pad: json.dumps(obj).encode() + pad, st.dictionaries(
        st.text(max_size=6),
        st.one_of(st.fixed_dictionaries({"dtype": st.sampled_from(["F32", "BF16", "I64", "nope", 3]),
                                         "shape": st.one_of(st.lists(st.integers(min_value=-2, max_value=10**12), max_size=3), WEIRD),
                                         "data_offsets": st.one_of(st.lists(st.integers(min_value=-5, max_value=10**6), min_size=2, max_size=2), WEIRD)}),
                  WEIRD),
        max_size=3), st.binary(max_size=32)),
))
def test_any_safetensors_header_reads_or_raises_zoo_error(header, tmp_path_factory):
    from zoo_registry.checkpoint import read_header

    path = tmp_path_factory.mktemp("st") / "model.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 64)
    for verify in (False, True):
        try:
            read_header(path, verify_data=verify)
        except ZooError:
            pass
