"""zoo_registry.chat's prompt side on a small real tokenizer (hunyuan-tiny's byte-level BPE as a
transformers tokenizer): rendering with the thinking switch (Tencent's real chat templates), the
stop-token wrapper, and which output parser a name picks."""

from __future__ import annotations

import json
import warnings

import pytest

import chat_fixtures as cf
from zoo_hunyuan.chat import OUTPUT_FORMAT as HY
from zoo_registry.chat import PLAIN, render
from zoo_registry.errors import ConfigError, ZooWarning

# a HunYuan-style template whose model reasons (it mentions <think>) but that has no enable_thinking
THINKING_NO_VARIABLE = ("{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|eos|>{% endfor %}"
                        "{% if add_generation_prompt %}<|assistant|><think>\n{% endif %}")


@pytest.fixture(scope="module")
def hf():
    from transformers import PreTrainedTokenizerFast
    from zoo_hunyuan import tiny

    return PreTrainedTokenizerFast(tokenizer_object=tiny.build_tokenizer(), bos_token="<|bos|>", eos_token="<|eos|>")


def with_template(hf, template):
    hf.chat_template = template
    return hf


def large_template():
    return json.loads(cf.release_file("large", "tokenizer_config.json").read_text(encoding="utf-8"))["chat_template"]


@pytest.mark.parametrize("on", [True, False])
def test_a_model_that_does_not_reason_gets_no_prefix(hf, on):
    tok = with_template(hf, large_template())  # HunYuan-Large: no enable_thinking, no <think>
    default = render(tok, "Hi", output_format=HY)
    with pytest.warns(ZooWarning, match="does not mention '<think>', so the model does not reason"):
        switched = render(tok, "Hi", enable_thinking=on, output_format=HY)
    assert "think" not in switched.text and switched.ids == default.ids
    assert switched.thinking == "not switchable (ignored)"


def test_a_reasoning_template_without_the_variable_gets_the_model_cards_prefix(hf):
    tok = with_template(hf, THINKING_NO_VARIABLE)
    off = render(tok, "Hi", enable_thinking=False, output_format=HY)
    assert "<|user|>/no_thinkHi<|eos|>" in off.text and "'/no_think' before the user message" in off.thinking
    assert "<|user|>/thinkHi" in render(tok, "Hi", enable_thinking=True, output_format=HY).text
    with pytest.warns(ZooWarning, match="no enable_thinking variable and its plugin declares no /think-style prefixes"):
        plain = render(tok, "Hi", enable_thinking=False, output_format=PLAIN)
    assert "<|user|>Hi<|eos|>" in plain.text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        render(tok, "Hi", output_format=HY)  # no switch asked: no warning


def test_text_sent_as_is_stays_as_is(hf):
    tok = with_template(hf, THINKING_NO_VARIABLE)
    with pytest.warns(ZooWarning, match="no chat template .*the text is sent as is"):
        raw = render(tok, "Hi there", enable_thinking=False, chat_template=False, output_format=HY)
    assert raw.text == "Hi there" and raw.ids == tok.encode("Hi there")


@pytest.mark.parametrize("template, chat_template, why", [(None, True, "this tokenizer has none"),
                                                          (THINKING_NO_VARIABLE, False, "--no-chat-template")])
def test_messages_without_a_chat_template_are_an_error(hf, template, chat_template, why):
    tok = with_template(hf, template)
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    with pytest.raises(ConfigError, match=f"a list of chat messages needs a chat template, and {why}") as err:
        render(tok, messages, chat_template=chat_template)
    assert "pass the prompt as a string" in err.value.hint and "chat_template" in err.value.hint


def test_mlx_lm_custom_renderer_gets_the_switch_only_when_asked(hf):
    from mlx_lm.tokenizer_utils import TokenizerWrapper

    seen = []

    def renderer(messages, add_generation_prompt=False, **kwargs):
        seen.append(kwargs)
        return "".join(f"<|{m['role']}|>{m['content']}" for m in messages) + "<|assistant|>"

    tok = TokenizerWrapper(with_template(hf, None), chat_template=renderer)
    assert tok.has_thinking is False  # mlx-lm's wrapper would pass enable_thinking=False on its own
    prompt = render(tok, "Hi")
    assert seen[-1] == {} and prompt.text == "<|user|>Hi<|assistant|>" and prompt.thinking == "template default"
    render(tok, [{"role": "user", "content": "Hi"}], enable_thinking=True)
    assert seen[-1] == {"enable_thinking": True}
    assert render(tok, "Hi", chat_template=False).text == "Hi" and len(seen) == 2  # --no-chat-template: not called


def test_a_missing_module_fails_under_ci_and_skips_elsewhere(monkeypatch):
    # the rule tests/test_generate_a13b_folder.py applies to the HYTokenizer (zoo_hunyuan.tokenizer)
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="zoo_no_such_module is missing .*CI must have it"):
        cf.require_module("zoo_no_such_module", "a test")
    with pytest.raises(pytest.fail.Exception):
        cf.require_module("zoo_no_such_package.module", "a test")
    cf.require_module("zoo_hunyuan.chat", "present: nothing happens")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="zoo_no_such_module not found"):
        cf.require_module("zoo_no_such_module", "a test")


def test_ensure_eos_leaves_the_callers_tokenizer_alone_and_reuses_its_wrapper(hf):
    from mlx_lm.tokenizer_utils import TokenizerWrapper

    from zoo_registry.chat.generate import ensure_eos

    eos = hf.eos_token_id
    wrapper = TokenizerWrapper(hf)
    assert ensure_eos(wrapper, [eos]) is wrapper  # nothing to add
    own = ensure_eos(wrapper, [eos, 7])
    assert own is not wrapper and own.eos_token_ids == {eos, 7} and wrapper.eos_token_ids == {eos}
    assert ensure_eos(wrapper, [7, eos]) is own  # made once
    assert own.decode(hf.encode("Hello")) == "Hello" and own._tokenizer is hf
    bare = ensure_eos(hf, [7])
    assert isinstance(bare, TokenizerWrapper) and bare.eos_token_ids == {eos, 7} and ensure_eos(hf, [7]) is bare
    assert hf.eos_token_id == eos and not isinstance(hf, TokenizerWrapper)


def test_the_generic_think_parser_is_a_name_you_can_ask_for(hf):
    from zoo_registry.chat import PLAIN, THINK, output_format
    from zoo_registry.errors import UnknownNameError

    assert output_format("no-such-model", name="think") == (THINK, "think")
    assert output_format(name="none") == (PLAIN, "none")
    assert output_format("no-such-model", tokenizer=with_template(hf, THINKING_NO_VARIABLE)) == (THINK, "think")
    with pytest.raises(UnknownNameError, match=r"output parser 'thinkk'.*\(built in: none, think\)"):
        output_format(name="thinkk")
