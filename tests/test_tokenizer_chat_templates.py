"""HunYuan's real chat templates: zoo's ids equal transformers' rendering encoded by Tencent's tokenizer.

The expected ids are ``render_jinja_template`` (transformers' chat-template renderer) of the
release's template, encoded by the tiktoken oracle; the actual ids come from the tokenizer
``zoo_registry.load`` returns (mlx-lm's wrapper around zoo's converted tokenizer).
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from tokenizer_oracle import A13B, LARGE, Oracle, hunyuan_folder, load_tok, require_shared

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "天气 / weather for a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]

CHATS = {
    "system_user": [{"role": "system", "content": "You are a helpful assistant. 请简洁回答。"}, {"role": "user", "content": "Hello! 你好"}],
    "user_only": [{"role": "user", "content": "What is 12345 + 678?"}],
    "multi_turn": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke <|eos|> please"},
    ],
    "empty_system": [{"role": "system", "content": ""}, {"role": "user", "content": "no head"}, {"role": "assistant", "content": "ok"}],
    "tool_call_and_result": [
        {"role": "user", "content": "北京天气怎么样？"},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "北京"}}}]},
        {"role": "tool", "content": '{"temperature": 21, "sky": "clear"}'},
    ],
}


class FrozenDatetime(datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2025, 6, 27, 9, 30, 5)  # a Friday: the template maps the weekday to Chinese


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    """``strftime_now`` reads the clock; both renderings must see the same second."""
    import transformers.utils.chat_template_utils as ctu

    monkeypatch.setattr(ctu, "datetime", FrozenDatetime)


def release(tmp_path_factory, where, vocab, extras):
    rank_file = require_shared(where / "hy.tiktoken")
    declared = json.loads(require_shared(where / "tokenizer_config.json").read_text(encoding="utf-8"))
    folder = hunyuan_folder(tmp_path_factory.mktemp(where.name), rank_file, declared, {"vocab_size": vocab})
    return load_tok(folder), Oracle(rank_file, extras), declared["chat_template"], folder


@pytest.fixture(scope="module")
def a13b(tmp_path_factory):
    return release(tmp_path_factory, A13B, 128167, 205)


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    return release(tmp_path_factory, LARGE, 129024, 204)


def expected(oracle, template, messages, **kwargs):
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(conversations=[messages], chat_template=template, **kwargs)
    return rendered[0], oracle.encode(rendered[0])


def same_refusal(tok, oracle, template, messages, **kwargs):
    """An empty first message makes the templates call ``dict.update``, which transformers' sandbox
    refuses; zoo's tokenizer must refuse it the same way (it renders with transformers)."""
    from jinja2.exceptions import SecurityError

    with pytest.raises(SecurityError) as theirs:
        expected(oracle, template, messages, **kwargs)
    with pytest.raises(SecurityError) as ours:
        tok.apply_chat_template(messages, **kwargs)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("chat", sorted(CHATS))
@pytest.mark.parametrize("options", [
    {"add_generation_prompt": True},
    {"add_generation_prompt": False},
    {"add_generation_prompt": True, "enable_thinking": False},
    {"add_generation_prompt": True, "enable_thinking": True},
    {"add_generation_prompt": True, "tools": TOOLS},
    {"add_generation_prompt": True, "tools": TOOLS, "enable_thinking": False},
], ids=["gen", "nogen", "no_think", "think", "tools", "tools_no_think"])
def test_a13b_template(a13b, chat, options):
    tok, oracle, template, folder = a13b
    if chat == "empty_system" and not options.get("tools"):
        return same_refusal(tok, oracle, template, CHATS[chat], **options)
    text, ids = expected(oracle, template, CHATS[chat], **options)
    # transformers' tokenizer as loaded; mlx-lm's wrapper fills in enable_thinking when it is not given
    assert tok._tokenizer.apply_chat_template(CHATS[chat], tokenize=False, **options) == text
    assert tok._tokenizer.apply_chat_template(CHATS[chat], return_dict=False, **options) == ids
    if "enable_thinking" in options:
        assert tok.apply_chat_template(CHATS[chat], **options) == ids
    if options.get("tools"):
        assert "2025-06-27 09:30:05 星期五" in text
    if options.get("enable_thinking") is False:
        assert text.endswith("<think>\n\n</think>\n")
    assert not (folder / "IMPORTED").exists()


@pytest.mark.parametrize("chat", ["system_user", "user_only", "multi_turn", "empty_system"])
def test_large_template(large, chat):
    tok, oracle, template, folder = large
    if chat == "empty_system":
        return same_refusal(tok, oracle, template, CHATS[chat], add_generation_prompt=True)
    text, ids = expected(oracle, template, CHATS[chat], add_generation_prompt=True)
    assert tok.apply_chat_template(CHATS[chat], tokenize=False, add_generation_prompt=True) == text
    assert tok.apply_chat_template(CHATS[chat], add_generation_prompt=True) == ids
    assert ids[0] == oracle.specials["<|startoftext|>"]


def test_chat_template_jinja_file_is_used_when_the_config_has_none(tmp_path, a13b):
    _, oracle, template, _ = a13b
    declared = json.loads(require_shared(A13B / "tokenizer_config.json").read_text(encoding="utf-8"))
    declared.pop("chat_template")
    folder = hunyuan_folder(tmp_path, A13B / "hy.tiktoken", declared, {"vocab_size": 128167})
    (folder / "chat_template.jinja").write_text(template, encoding="utf-8")
    tok = load_tok(folder)
    assert tok._tokenizer.apply_chat_template(CHATS["multi_turn"], add_generation_prompt=True, return_dict=False) == expected(
        oracle, template, CHATS["multi_turn"], add_generation_prompt=True)[1]
