"""Done-when of issue 12: a folder laid out like Tencent's Hunyuan-A13B repo loads with
``zoo_registry.load`` and its tokenizer is Tencent's, without anything in the folder being imported.

The folder holds the release's own ``hy.tiktoken``, ``tokenizer_config.json`` (with ``auto_map``)
and ``generation_config.json``, its ``config.json`` scaled down (vocab kept at 128167), small
random weights, and a ``tokenization_hy.py`` that writes a marker file and raises if imported.
"""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from tokenizer_oracle import A13B, CORPUS, Oracle, plant_tokenization_hy, require_shared, shared_cache

SCALE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, attention_head_dim=8,
             intermediate_size=32, num_experts=4, max_position_embeddings=4096)


@pytest.fixture(scope="module")
def a13b_repo(tmp_path_factory):
    import numpy as np
    from safetensors.numpy import save_file

    from zoo_hunyuan.tiny import make_weights

    folder = tmp_path_factory.mktemp("Hunyuan-A13B-Instruct")
    for name in ("hy.tiktoken", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(require_shared(A13B / name), folder / name)
    cfg = json.loads(require_shared(A13B / "config.json").read_text())
    layers = SCALE["num_hidden_layers"]
    cfg.update(SCALE, moe_topk=[2] * layers, num_shared_expert=[1] * layers, moe_intermediate_size=[32] * layers)
    assert cfg["vocab_size"] == 128167 and "auto_map" in cfg
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    weights = make_weights(dict(cfg, num_hidden_layers=layers, num_experts=4, moe_topk=2, num_shared_expert=1), seed=3)
    save_file({k: np.asarray(v * 0.1, dtype=np.float32) for k, v in weights.items()}, str(folder / "model.safetensors"), metadata={"format": "pt"})
    plant_tokenization_hy(folder)
    for name in ("configuration_hunyuan.py", "hunyuan.py"):
        shutil.copy(folder / "tokenization_hy.py", folder / name)
    return folder


@pytest.fixture(scope="module")
def loaded(a13b_repo):
    import warnings

    from zoo_registry import load

    with shared_cache(), warnings.catch_warnings():
        warnings.simplefilter("error")  # no remote-code (or any other) warning
        model, tokenizer = load(a13b_repo)
    return model, tokenizer


def test_loads_without_importing_anything_from_the_folder(a13b_repo, loaded):
    model, tokenizer = loaded
    assert not (a13b_repo / "IMPORTED").exists()
    assert not any(name in sys.modules for name in ("tokenization_hy", "hunyuan", "configuration_hunyuan"))
    from mlx.utils import tree_flatten

    embed = dict(tree_flatten(model.parameters()))["model.embed_tokens.weight"]
    assert embed.shape == (128167, SCALE["hidden_size"]) == (len(tokenizer._tokenizer), SCALE["hidden_size"])
    assert tokenizer.eos_token_ids == {127960, 127967}  # generation_config.json's list, plus eos <|eos|>


def test_tokenizer_ids_are_tencents_on_the_whole_corpus(loaded):
    _, tokenizer = loaded
    oracle = Oracle(A13B / "hy.tiktoken")
    for name, text in CORPUS:
        assert tokenizer.encode(text) == oracle.encode(text), name


def test_chat_template_renders_like_transformers(loaded):
    from transformers.utils.chat_template_utils import render_jinja_template

    _, tokenizer = loaded
    template = json.loads((A13B / "tokenizer_config.json").read_text(encoding="utf-8"))["chat_template"]
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    for thinking in (True, False):
        rendered, _ = render_jinja_template([chat], chat_template=template, add_generation_prompt=True, enable_thinking=thinking)
        assert tokenizer.apply_chat_template(chat, add_generation_prompt=True, enable_thinking=thinking) == Oracle(A13B / "hy.tiktoken").encode(rendered[0])


def test_generates_tokens_from_a_chat_prompt(loaded):
    from mlx_lm import generate

    model, tokenizer = loaded
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "你好"}], add_generation_prompt=True, enable_thinking=False)
    text = generate(model, tokenizer, prompt, max_tokens=8)
    assert isinstance(text, str) and len(text) > 0


def test_zoo_generate_streams_text_from_the_folder(a13b_repo, loaded, zoo):
    import os

    with shared_cache() as cache:  # the tokenizer conversion made by `loaded` is reused
        env = dict(os.environ, ZOO_CACHE_DIR=str(cache), ZOO_PROGRESS="0")
    out = zoo("generate", a13b_repo, "--prompt", "Hello", "--max-tokens", "8", env=env, check=0, timeout=300)
    assert out.stdout.strip()
    assert "remote code" not in out.stderr and "auto_map" not in out.stderr
    assert not (a13b_repo / "IMPORTED").exists()
