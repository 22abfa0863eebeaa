"""The example out-of-tree plugin (examples/zoo-llama), as installed: discovery, mlx-lm parity, layouts, cards.

The README's test command installs it (``pip install ./examples/zoo-llama``), as CI does. The oracle for
every logit comparison is mlx-lm's own ``llama`` / ``qwen2`` module on the same weights.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mlx.core as mx
import zoo_llama  # noqa: F401 - installed by the README's test command

from mlx.utils import tree_flatten  # noqa: E402
from mlx_lm.models import llama as mlx_llama  # noqa: E402
from mlx_lm.models import qwen2 as mlx_qwen2  # noqa: E402
from mlx_lm.models.cache import make_prompt_cache  # noqa: E402

from zoo_registry import ConfigError, load_model  # noqa: E402
from zoo_registry.registry import Registry  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "zoo-llama"
BASE = dict(vocab_size=80, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=8,
            num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=256)
LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
# name -> (zoo_llama config, mlx-lm module, the config mlx-lm reads)
CASES = {
    "llama-untied": (dict(BASE, tie_word_embeddings=False), mlx_llama, dict(BASE, tie_word_embeddings=False)),
    "llama3-rope-tied": (dict(BASE, rope_scaling=LLAMA3, tie_word_embeddings=True), mlx_llama,
                         dict(BASE, rope_scaling=LLAMA3, tie_word_embeddings=True)),
    "llama3-rope-parameters-transformers5": (
        dict({k: v for k, v in BASE.items() if k != "rope_theta"}, rope_parameters=dict(LLAMA3, rope_theta=500000.0), tie_word_embeddings=False),
        mlx_llama, dict(BASE, rope_theta=500000.0, rope_scaling=LLAMA3, tie_word_embeddings=False)),
    "llama-biases-head-dim": (dict(BASE, head_dim=16, attention_bias=True, mlp_bias=True, tie_word_embeddings=False), mlx_llama,
                              dict(BASE, head_dim=16, attention_bias=True, mlp_bias=True, tie_word_embeddings=False)),
    "qwen2-qkv-bias": (dict(BASE, qkv_bias=True, rope_theta=1000000.0, tie_word_embeddings=True), mlx_qwen2,
                       dict(BASE, rope_theta=1000000.0, tie_word_embeddings=True)),
}


def zoo_config(cfg):
    return dict(cfg, model_type="zoo_llama")


def reference(name, seed=0):
    """mlx-lm's model for case ``name`` with seeded random weights, and those weights."""
    _, module, cfg = CASES[name]
    ref = module.Model(module.ModelArgs.from_dict(dict(cfg, model_type=module.__name__.rsplit(".", 1)[1])))
    mx.random.seed(seed)
    weights = [(k, (1.0 if "norm" in k else 0.0) + mx.random.normal(v.shape) * 0.1) for k, v in tree_flatten(ref.parameters())]
    ref.load_weights(weights)
    mx.eval(ref.parameters())
    return ref, dict(weights)


def ids(B=2, L=40, seed=1):
    return mx.array(np.random.default_rng(seed).integers(0, BASE["vocab_size"], (B, L)))


def max_diff(a, b):
    return float(mx.abs(a.astype(mx.float32) - b.astype(mx.float32)).max())


def write(folder: Path, config: dict, tensors: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    mx.save_safetensors(str(folder / "model.safetensors"), tensors)
    return folder


# -- discovery -------------------------------------------------------------------------------------


def test_zoo_list_shows_the_plugin_architecture_and_cards(zoo, isolated_home):
    listing = json.loads(zoo("list", "--json", check=0).stdout)
    (row,) = [a for a in listing["architectures"] if a["name"] == "zoo_llama"]
    assert (row["provider"], row["provider_version"], row["model"]) == ("zoo-llama", "0.1.0", "zoo_llama.model:Model")
    cards = {c["name"]: c for c in listing["cards"]}
    assert cards["smollm2-135m-instruct-zoo"]["architecture"] == "zoo_llama"
    assert "qwen2.5-0.5b-instruct-zoo" in cards
    plugins = {p["name"]: p for p in json.loads(zoo("plugins", "--json", check=0).stdout)}
    assert plugins["zoo-llama"]["status"] == "loaded", plugins["zoo-llama"]["error"]
    assert plugins["zoo-llama"]["distribution"] == "zoo-llama"
    assert plugins["zoo-llama"]["hooks"] == ["register_architectures", "register_components", "register_model_cards",
                                             "register_output_parsers", "register_sanitize_ops", "register_tokenizers"]
    text = zoo("list", "zoo_llama", check=0).stdout
    assert "zoo_llama" in text and "zoo-llama" in text


def test_validate_accepts_the_shipped_files_and_rejects_a_typo(zoo, isolated_home, tmp_path):
    pkg = EXAMPLE / "zoo_llama"
    zoo("validate", *sorted((pkg / "cards").glob("*.yaml")), pkg / "rules" / "zoo_llama.yaml", check=0)
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps(zoo_config(dict(BASE, rope_thetta=1.0))))
    proc = zoo("validate", bad, check=1)
    assert f"{bad}::$.rope_thetta: unknown key (did you mean 'rope_theta'?)" in proc.stdout + proc.stderr


def test_every_schema_property_is_described():
    schema = json.loads((EXAMPLE / "zoo_llama" / "schemas" / "zoo_llama.config.schema.json").read_text())
    assert schema["additionalProperties"] is False

    def walk(node, path):
        for key, sub in (node.get("properties") or {}).items():
            assert sub.get("description"), f"{path}.{key} has no description"
            walk(sub, f"{path}.{key}")
        for key, sub in (node.get("$defs") or {}).items():
            walk(sub, f"$defs.{key}")

    walk(schema, "$")


@pytest.mark.parametrize("change, message", [
    ({"num_key_value_heads": 3}, r"\$\.num_attention_heads: 8 is not divisible by num_key_value_heads 3"),
    ({"use_sliding_window": True}, r"\$\.use_sliding_window: sliding-window attention is not supported"),
    ({"rope_scaling": {"rope_type": "llama3"}}, r"\$\.rope_scaling\.factor: llama3 RoPE scaling needs a factor"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": 2.0}}, r"\$\.rope_scaling\.rope_type: expected one of 'default', 'linear', 'llama3' but got 'yarn'"),
], ids=["heads", "sliding-window", "llama3-without-factor", "yarn"])
def test_bad_configs_name_the_key(tmp_path, change, message):
    folder = write(tmp_path / "bad", zoo_config(dict(BASE, **change)), {})
    with pytest.raises(ConfigError, match=message):
        load_model(folder, registry=Registry.discover())


# -- parity with mlx-lm ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_logits_match_mlx_lm_on_the_same_weights(name):
    from zoo_llama.model import Model

    ref, weights = reference(name)
    model = Model(zoo_config(CASES[name][0]))
    model.load_weights(list(weights.items()), strict=True)  # same parameter names, nothing missing or extra
    x = ids()
    assert max_diff(model(x), ref(x)) <= 1e-4
    # and step by step through mlx-lm's caches (positions past original_max_position_embeddings)
    caches = make_prompt_cache(model), make_prompt_cache(ref)
    ours = [model(x[:, :30], cache=caches[0])] + [model(x[:, t:t + 1], cache=caches[0]) for t in range(30, 40)]
    theirs = [ref(x[:, :30], cache=caches[1])] + [ref(x[:, t:t + 1], cache=caches[1]) for t in range(30, 40)]
    assert max_diff(mx.concatenate(ours, axis=1), mx.concatenate(theirs, axis=1)) <= 1e-4


def test_llama3_scaling_changes_the_logits():
    """The llama3 case is not vacuous: the same weights with plain RoPE give other logits."""
    from zoo_llama.model import Model

    _, weights = reference("llama3-rope-tied")
    plain = Model(zoo_config(dict(BASE, tie_word_embeddings=True)))
    plain.load_weights(list(weights.items()))
    ref, _ = reference("llama3-rope-tied")
    assert max_diff(plain(ids()), ref(ids())) > 1e-3


def test_hf_checkpoint_with_buffers_and_tied_head_copy_loads_through_the_rules(tmp_path):
    ref, weights = reference("llama3-rope-tied")
    tensors = dict(weights)
    tensors["lm_head.weight"] = weights["model.embed_tokens.weight"]  # a tied copy some exports write
    for i in range(BASE["num_hidden_layers"]):
        tensors[f"model.layers.{i}.self_attn.rotary_emb.inv_freq"] = mx.zeros((4,))
    folder = write(tmp_path / "hf", zoo_config(CASES["llama3-rope-tied"][0]), tensors)
    model, info = load_model(folder, return_info=True, registry=Registry.discover())
    assert info.provider == "zoo-llama" and info.report.ok
    assert max_diff(model(ids()), ref(ids())) <= 1e-4


def test_meta_consolidated_layout_matches_mlx_lm_with_traditional_rope(tmp_path):
    """Meta's layout rotates interleaved pairs: mlx-lm's llama with rope_traditional reads it unpermuted.

    The rule file renames and permutes it (op interleaved_to_halves) into zoo_llama's half-split
    layout; both must give the same logits.
    """
    cfg = dict(BASE, tie_word_embeddings=False)
    ref = mlx_llama.Model(mlx_llama.ModelArgs.from_dict(dict(cfg, model_type="llama", rope_traditional=True)))
    mx.random.seed(3)
    weights = {k: (1.0 if "norm" in k else 0.0) + mx.random.normal(v.shape) * 0.1 for k, v in tree_flatten(ref.parameters())}
    ref.load_weights(list(weights.items()))
    names = {"model.embed_tokens": "tok_embeddings", "model.norm": "norm", "lm_head": "output", "model.layers": "layers",
             "self_attn.q_proj": "attention.wq", "self_attn.k_proj": "attention.wk", "self_attn.v_proj": "attention.wv",
             "self_attn.o_proj": "attention.wo", "mlp.gate_proj": "feed_forward.w1", "mlp.down_proj": "feed_forward.w2",
             "mlp.up_proj": "feed_forward.w3", "post_attention_layernorm": "ffn_norm", "input_layernorm": "attention_norm"}
    meta = {}
    for k, v in weights.items():
        for hf, m in names.items():
            k = k.replace(hf, m)
        meta[k] = v
    folder = write(tmp_path / "meta", zoo_config(cfg), meta)
    model, info = load_model(folder, return_info=True, registry=Registry.discover())
    assert info.report.ok
    assert info.report.applied["meta-wq"] == info.report.applied["meta-wk"] == BASE["num_hidden_layers"]
    assert max_diff(model(ids()), ref(ids())) <= 1e-4


def test_card_loads_a_cached_repo_through_zoo_llama(isolated_home, tmp_path):
    """The SmolLM2 card points at a llama checkpoint; its config_overrides route it to zoo-llama."""
    ref, weights = reference("llama-untied")
    hub = isolated_home / ".cache" / "huggingface" / "hub" / "models--HuggingFaceTB--SmolLM2-135M-Instruct"
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    write(hub / "snapshots" / commit, dict(CASES["llama-untied"][2], model_type="llama"), dict(weights))
    (hub / "refs").mkdir(parents=True)
    (hub / "refs" / "main").write_text(commit)
    model, info = load_model("smollm2-135m-instruct-zoo", return_info=True, registry=Registry.discover())
    assert (info.architecture, info.provider) == ("zoo_llama", "zoo-llama")
    assert max_diff(model(ids()), ref(ids())) <= 1e-4


# -- the plugin's own test suite -------------------------------------------------------------------


def _example_tests():
    import importlib.util

    spec = importlib.util.spec_from_file_location("zoo_llama_own_tests", EXAMPLE / "tests" / "test_zoo_llama.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXAMPLE_TESTS = _example_tests()


@pytest.mark.parametrize("name", sorted(EXAMPLE_TESTS.CONFIGS))
def test_model_runner_on_the_plugins_configs(zoo_model_tests, name):
    """The plugin's own model checks, in this process (its own suite runs too: in testpaths, and isolated below)."""
    figures = zoo_model_tests(EXAMPLE_TESTS.CONFIGS[name], layouts=("mlx", "hf", EXAMPLE_TESTS.meta_layout))
    assert figures["provider"] == "zoo-llama"
    assert figures["cache_max_diff"] <= 1e-4 and figures["batch_max_diff"] <= 1e-4


@pytest.mark.slow
def test_the_plugins_own_tests_pass_with_only_the_shipped_pytest_plugin(tmp_path):
    """What a plugin author runs: their tests, with zoo's pytest plugin (fixtures) and nothing else."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
