"""hunyuan-tiny-instruct: a generated checkpoint laid out like Tencent's Hunyuan-A13B-Instruct release.

Its tokenizer is an ``hy.tiktoken`` rank file declared as ``HYTokenizer`` (no tokenizer.json, no
Python file), so loading it goes through zoo's data-only tokenizer path; the ids are checked
against tiktoken configured as Tencent's tokenizer, and the template against transformers' renderer.
"""

from __future__ import annotations

import json

import pytest

from tokenizer_oracle import CORPUS, Oracle, oracle_ranks, shared_cache
from zoo_hunyuan import tiny_instruct


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_instruct.generate(tmp_path_factory.mktemp("tiny-instruct") / "ckpt", seed=0)


def test_same_seed_gives_the_same_bytes(folder, tmp_path):
    again = tiny_instruct.generate(tmp_path / "again", seed=0)
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    for name in names:
        assert (folder / name).read_bytes() == (again / name).read_bytes(), name


def test_laid_out_like_the_a13b_release(folder):
    names = {p.name for p in folder.iterdir()}
    assert {"hy.tiktoken", "tokenizer_config.json", "generation_config.json", "config.json", "model.safetensors"} <= names
    assert not any(n.endswith(".py") or n == "tokenizer.json" for n in names)
    declared = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert declared["tokenizer_class"] == "HYTokenizer"
    assert declared["auto_map"] == {"AutoTokenizer": ["tokenization_hy.HYTokenizer", None]}
    from zoo_registry.resources import resource_path

    assert declared["chat_template"] == resource_path(tiny_instruct.TEMPLATE).read_text(encoding="utf-8")
    ranks = oracle_ranks(folder / "hy.tiktoken")
    assert sorted(ranks.values()) == list(range(len(ranks)))
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["vocab_size"] == len(ranks) + 5 + 205  # specials after the ranks, as A13B's 127957 + 210 = 128167
    oracle = Oracle(folder / "hy.tiktoken")
    gen = json.loads((folder / "generation_config.json").read_text())
    assert gen["eos_token_id"] == [oracle.specials["<|eos|>"], oracle.specials["<|extra_5|>"]]
    assert cfg["eos_token_id"] == oracle.specials["<|eos|>"] and cfg["pad_token_id"] == gen["pad_token_id"] == oracle.specials["<|pad|>"]
    assert {k: gen[k] for k in ("top_k", "top_p", "repetition_penalty", "temperature")} == {"top_k": 20, "top_p": 0.8, "repetition_penalty": 1.05, "temperature": 0.7}


def test_config_is_a13b_shaped_and_validates(folder):
    from zoo_registry.configs import validate_config

    cfg = json.loads((folder / "config.json").read_text())
    arch, normalised = validate_config(cfg, str(folder / "config.json"))
    assert arch.name == "hunyuan"
    assert cfg["use_cla"] is False and cfg["use_qk_norm"] is True and cfg["use_mixed_mlp_moe"] is True
    assert set(normalised["moe_topk"]) == {2} and set(normalised["num_experts"]) == {4} and set(normalised["num_shared_expert"]) == {1}
    assert cfg["rope_scaling"]["type"] == "dynamic" and cfg["rope_scaling"]["alpha"] == 1000.0


def test_tokenizer_gives_tiktoken_ids(folder):
    from zoo_registry.loading import load_tokenizer

    with shared_cache():
        tok = load_tokenizer(folder)
    oracle = Oracle(folder / "hy.tiktoken")
    for name, text in CORPUS:
        ids = tok.encode(text)
        assert ids == oracle.encode(text), name
        assert tok.decode(ids) == oracle.decode(ids), name


def test_card_loads_and_generates_reasoning_tags(isolated_home):
    from mlx_lm import generate
    from transformers.utils.chat_template_utils import render_jinja_template

    from zoo_registry import load

    model, tok = load("hunyuan-tiny-instruct")
    chat = [{"role": "user", "content": "Hello"}]
    prompt = tok.apply_chat_template(chat, add_generation_prompt=True, enable_thinking=True)
    rendered, _ = render_jinja_template([chat], chat_template=tok.chat_template, add_generation_prompt=True, enable_thinking=True)
    assert tok.decode(prompt) == rendered[0] == "<|startoftext|>Hello<|extra_0|>"
    text = generate(model, tok, prompt, max_tokens=40)
    assert text.startswith("<think>\n")
    assert tok.eos_token_ids == {tok.convert_tokens_to_ids("<|eos|>"), tok.convert_tokens_to_ids("<|extra_5|>")}


def test_cli_generate_works(zoo, isolated_home):
    import os

    from zoo_hunyuan.tiny_instruct import DEMO_PROMPT, DEMO_REPLY

    out = zoo("generate", "hunyuan-tiny-instruct", "--prompt", DEMO_PROMPT, "--max-tokens", "64", env=dict(os.environ, ZOO_PROGRESS="0"), check=0, timeout=300)
    answer = DEMO_REPLY.split("<answer>\n")[1].split("\n</answer>")[0]
    assert out.stdout == answer + "\n"  # the answer only: the reasoning went to stderr (hidden when not a terminal)
    assert "<think>" not in out.stdout + out.stderr and "I greet them back" not in out.stdout
