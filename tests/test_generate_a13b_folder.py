"""Done-when of issue 12: ``zoo generate`` on a folder laid out like Tencent's Hunyuan-A13B repo
(its hy.tiktoken, tokenizer_config.json with auto_map and chat template, generation_config.json,
config.json scaled down with vocab 128167) streams text, applies the generation defaults and
separates thinking.

The tokenizer comes from ``hy.tiktoken`` through the HunYuan plugin's ``register_tokenizers``
builder (HYTokenizer, built from data). Its output head is scripted (tests/chat_fixtures.py) so
that after the thinking-mode prompt the model writes A13B's output format and ends its turn with
``<|eos|>``, an id the release's generation_config.json lists.
"""

from __future__ import annotations

import json
import shutil

import pytest

import chat_fixtures as cf
from chat_fixtures import run  # noqa: F401 - the CLI fixture


@pytest.fixture(scope="module", autouse=True)
def hy_tokenizer():
    """The HYTokenizer lands with the tokenizer branch before CI runs: skip without it, fail under CI."""
    cf.require_module("zoo_hunyuan.tokenizer", "the HYTokenizer built from hy.tiktoken, hook register_tokenizers, issue 12")


SCALE = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, attention_head_dim=16,
             intermediate_size=32, num_experts=4, max_position_embeddings=4096)
SCRIPT = "<think>\n用户在打招呼。\n</think>\n<answer>\nHello! 你好！\n</answer>"
MESSAGES = [{"role": "user", "content": "Hello"}]


def rendered(hf, **kwargs):
    ids = hf.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True, **kwargs)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    import numpy as np
    from safetensors.numpy import save_file

    from zoo_hunyuan.tiny import make_weights

    from zoo_registry import load

    path = tmp_path_factory.mktemp("Hunyuan-A13B-Instruct")
    for name in ("hy.tiktoken", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(cf.a13b_file(name), path / name)
    cfg = json.loads(cf.a13b_file("config.json").read_text())
    layers = SCALE["num_hidden_layers"]
    cfg.update(SCALE, moe_topk=[2] * layers, num_shared_expert=[1] * layers, moe_intermediate_size=[32] * layers)
    assert cfg["vocab_size"] == 128167
    (path / "config.json").write_text(json.dumps(cfg, indent=2))
    weights = make_weights(dict(cfg, num_hidden_layers=layers, num_experts=4, moe_topk=2, num_shared_expert=1), seed=5)
    save_file({k: np.asarray(v * 0.1, dtype=np.float32) for k, v in weights.items()}, str(path / "model.safetensors"),
              metadata={"format": "pt"})
    from zoo_hunyuan.scripted import script_head

    (path / "tokenization_hy.py").write_text("raise RuntimeError('zoo imported the checkpoint code')\n")
    _, tokenizer = load(str(path))
    hf = tokenizer._tokenizer
    prompt_ids = rendered(hf)  # transformers' rendering, the template's default (thinking)
    script_ids = hf.encode(SCRIPT, add_special_tokens=False)
    eos = hf.convert_tokens_to_ids("<|eos|>")
    assert eos == 127960
    script_head(path, prompt_ids, script_ids + [eos] + hf.encode(" never", add_special_tokens=False))
    return path, hf, prompt_ids, script_ids


def test_generate_streams_the_answer_with_the_release_defaults(folder, run):
    path, _, prompt_ids, script_ids = folder
    out = run(path, "--prompt", "Hello", "--max-tokens", 64)
    assert out.out == "Hello! 你好！\n"
    gc = path / "generation_config.json"
    assert f"zoo: sampling: temperature 0.7, top_p 0.8, top_k 20, repetition_penalty 1.05 ({gc}); " \
           "stops at 127960 <|eos|>, 127967 <|extra_5|> (the same file)" in out.err
    assert "用户在打招呼" not in out.err + out.out and not (path / "IMPORTED").exists()
    data = json.loads(run(path, "--prompt", "Hello", "--max-tokens", 64, "--json").out)
    assert (data["reasoning"], data["text"], data["raw"]) == ("用户在打招呼。", "Hello! 你好！", SCRIPT)
    assert data["finish_reason"] == "stop" and data["generation_tokens"] == len(script_ids) + 1
    assert data["prompt_tokens"] == len(prompt_ids)


def test_no_think_prompt_is_transformers_rendering(folder, run):
    from zoo_registry import load
    from zoo_registry.chat import TextGenerator

    path, hf, prompt_ids, _ = folder
    model, tokenizer, info = load(str(path), return_info=True)
    gen = TextGenerator(model, tokenizer, path=path, model_type=info.raw_config["model_type"])
    expected = rendered(hf, enable_thinking=False)
    off = gen.render("Hello", enable_thinking=False)
    empty_block = hf.encode("<think>\n\n</think>\n", add_special_tokens=False)
    assert off.ids == expected and off.ids[-len(empty_block):] == empty_block
    assert gen.render("Hello").ids == prompt_ids  # the template's default: thinking
    data = json.loads(run(path, "--prompt", "Hello", "--max-tokens", 8, "--no-think", "--json").out)
    assert data["prompt_tokens"] == len(expected) and "enable_thinking=False" in data["thinking"]
