"""Render a prompt (chat template or not) with the thinking switch, as transformers renders it.

``enable_thinking`` is ``None`` (the template's own default), ``True`` or ``False``, mapped onto
what the model defines:

- a chat template that reads an ``enable_thinking`` variable gets it (Hunyuan-A13B, Qwen3);
- otherwise, when the model's output format declares thinking prefixes (Hunyuan: ``/think``,
  ``/no_think`` before the user's message, per Tencent's model card), the last user message gets
  the prefix;
- otherwise the switch is ignored with a warning.

The template is rendered by the Hugging Face tokenizer itself, not through mlx-lm's
``TokenizerWrapper.apply_chat_template``: the wrapper passes ``enable_thinking=<tokenizer has a
<think> token>`` when the caller does not, which silently turns Hunyuan-A13B's default (thinking)
off, since ``<think>`` is plain text in HunYuan's vocabulary. The text is rendered once and then
encoded without special-token additions, which is what ``apply_chat_template(tokenize=True)``
does, so a template that reads the clock (``strftime_now``) yields one consistent prompt.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

from ..errors import ZooWarning

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


def render(tokenizer, prompt: Union[str, Sequence[dict]], *, system: Optional[str] = None,
           enable_thinking: Optional[bool] = None, chat_template: bool = True, output_format=None,
           tools: Optional[list] = None) -> Prompt:
    """Token ids and text for ``prompt`` (a user message, or a list of chat messages)."""
    template = template_of(tokenizer) if chat_template else None
    custom = hasattr(type(tokenizer), "detokenizer") and getattr(tokenizer, "_chat_template", None) is not None  # mlx-lm's own renderer
    messages = _messages(prompt, system)
    kwargs, thinking = {}, "template default" if template or custom else "no chat template"
    if enable_thinking is not None:
        word = "on" if enable_thinking else "off"
        prefixes = getattr(output_format, "thinking_prefixes", None)
        if (template and re.search(rf"\b{VARIABLE}\b", template)) or custom:
            kwargs[VARIABLE] = bool(enable_thinking)
            thinking = f"{word} ({VARIABLE}={bool(enable_thinking)} in the chat template)"
        elif prefixes and (template or isinstance(prompt, str)):
            prefix = prefixes[0] if enable_thinking else prefixes[1]
            if _prefix(messages, prefix):
                thinking = f"{word} ({prefix!r} before the user message; the chat template has no {VARIABLE})"
        else:
            warnings.warn(f"thinking {word} was asked for, but this model's chat template has no {VARIABLE} variable and "
                          "its plugin declares no /think-style prefixes; ignored", ZooWarning, stacklevel=2)
            thinking = "not switchable (ignored)"
    if template or custom:
        renderer = tokenizer if custom else huggingface_tokenizer(tokenizer)
        if tools is not None:
            kwargs["tools"] = tools
        text = renderer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)
        ids = tokenizer.encode(text, add_special_tokens=False)
        return Prompt(list(ids), text, thinking)
    text = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    return Prompt(list(tokenizer.encode(text)), text, thinking)
