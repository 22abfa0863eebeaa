"""Render a prompt (chat template or not) with the thinking switch, as transformers renders it.

``enable_thinking`` is ``None`` (the template's own default), ``True`` or ``False``, mapped onto
what the model defines:

- a chat template that reads an ``enable_thinking`` variable gets it (Hunyuan-A13B, Qwen3);
- otherwise, when the model's output format declares thinking prefixes (Hunyuan: ``/think``,
  ``/no_think`` before the user's message, per Tencent's model card) and the chat template
  mentions the format's reasoning tag (``<think>``: the model reasons), the last user message gets
  the prefix; a template without the tag (HunYuan-Large, the legacy 7B) belongs to a model that
  does not reason, and a prefix would only corrupt its prompt;
- otherwise (also without a chat template: text sent as is stays as is) the switch is ignored
  with a warning.

A list of messages needs a chat template: without one it is an error (there is no faithful way
to flatten a conversation), not a silent cut to the last user message.

The template is rendered by the Hugging Face tokenizer itself, not through mlx-lm's
``TokenizerWrapper.apply_chat_template``: the wrapper passes ``enable_thinking=<tokenizer has a
<think> token>`` when the caller does not, which silently turns Hunyuan-A13B's default (thinking)
off, since ``<think>`` is plain text in HunYuan's vocabulary. A custom renderer that mlx-lm
attached to the wrapper (``chat_template_type``) is called directly for the same reason. The text is rendered once and then
encoded without special-token additions, which is what ``apply_chat_template(tokenize=True)``
does, so a template that reads the clock (``strftime_now``) yields one consistent prompt.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

from ..errors import ConfigError, ZooWarning

VARIABLE = "enable_thinking"


@dataclass
class Prompt:
    ids: List[int]
    text: str  # the rendered text (the splitter checks whether it opened a reasoning block)
    thinking: str  # how the thinking switch was applied, for the user


def template_of(tokenizer) -> Optional[str]:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named templates: the default one
        template = template.get("default") or next(iter(template.values()), None)
    return template if isinstance(template, str) else None


def huggingface_tokenizer(tokenizer):
    """The transformers tokenizer inside mlx-lm's ``TokenizerWrapper`` (or ``tokenizer`` itself)."""
    return tokenizer._tokenizer if hasattr(type(tokenizer), "detokenizer") else tokenizer


def _messages(prompt: Union[str, Sequence[dict]], system: Optional[str]) -> List[dict]:
    if isinstance(prompt, str):
        return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    messages = [dict(m) for m in prompt]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return messages


def _prefix(messages: List[dict], prefix: str) -> bool:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            message["content"] = prefix + message["content"]
            return True
    return False


def _custom_renderer(tokenizer):
    """The chat-template function mlx-lm attached to its ``TokenizerWrapper``, if any."""
    return getattr(tokenizer, "_chat_template", None) if hasattr(type(tokenizer), "detokenizer") else None


def _not_switchable(word: str, template: Optional[str], fmt) -> str:
    reasoning = getattr(fmt, "reasoning", None)
    if template is None:
        why = "there is no chat template (none in the checkpoint, or --no-chat-template): the text is sent as is"
    elif getattr(fmt, "thinking_prefixes", None) and reasoning:
        why = (f"this model's chat template has no {VARIABLE} variable and does not mention {reasoning[0]!r}, "
               "so the model does not reason")
    else:
        why = f"this model's chat template has no {VARIABLE} variable and its plugin declares no /think-style prefixes"
    warnings.warn(f"thinking {word} was asked for, but {why}; ignored", ZooWarning, stacklevel=3)
    return "not switchable (ignored)"


def render(tokenizer, prompt: Union[str, Sequence[dict]], *, system: Optional[str] = None,
           enable_thinking: Optional[bool] = None, chat_template: bool = True, output_format=None,
           tools: Optional[list] = None) -> Prompt:
    """Token ids and text for ``prompt`` (a user message, or a list of chat messages)."""
    template = template_of(tokenizer) if chat_template else None
    custom = _custom_renderer(tokenizer) if chat_template else None  # mlx-lm's own renderer
    if not (template or custom) and not isinstance(prompt, str):
        raise ConfigError(
            "a list of chat messages needs a chat template, and "
            + ("--no-chat-template (chat_template=False) turned it off" if not chat_template
               else "this tokenizer has none (no chat_template in its tokenizer_config.json)"),
            hint="pass the prompt as a string to send it as is, or use a checkpoint whose tokenizer_config.json has a "
                 "chat_template")
    messages = _messages(prompt, system)
    kwargs, thinking = {}, "template default" if template or custom else "no chat template"
    if enable_thinking is not None:
        word = "on" if enable_thinking else "off"
        prefixes = getattr(output_format, "thinking_prefixes", None)
        reasoning = getattr(output_format, "reasoning", None)
        if (template and re.search(rf"\b{VARIABLE}\b", template)) or custom:
            kwargs[VARIABLE] = bool(enable_thinking)
            thinking = f"{word} ({VARIABLE}={bool(enable_thinking)} in the chat template)"
        elif prefixes and reasoning and template and reasoning[0] in template:
            prefix = prefixes[0] if enable_thinking else prefixes[1]
            if _prefix(messages, prefix):
                thinking = f"{word} ({prefix!r} before the user message; the chat template has no {VARIABLE})"
            else:
                warnings.warn(f"thinking {word} was asked for, but there is no user message to put {prefix!r} before; "
                              "ignored", ZooWarning, stacklevel=2)
                thinking = "not switchable (ignored)"
        else:
            thinking = _not_switchable(word, template, output_format)
    if tools is not None:
        kwargs["tools"] = tools
    if custom:
        if VARIABLE in kwargs:  # named as mlx-lm's wrapper names it for this tokenizer
            kwargs[getattr(tokenizer, "_thinking_kwarg", VARIABLE)] = kwargs.pop(VARIABLE)
        text = custom(messages, add_generation_prompt=True, **kwargs)
        return Prompt(list(tokenizer.encode(text, add_special_tokens=False)), text, thinking)
    if template:
        text = huggingface_tokenizer(tokenizer).apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                                    **kwargs)
        return Prompt(list(tokenizer.encode(text, add_special_tokens=False)), text, thinking)
    text = messages[-1]["content"]
    return Prompt(list(tokenizer.encode(text)), text, thinking)
