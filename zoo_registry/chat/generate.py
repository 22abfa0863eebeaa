"""Generate with a loaded model and get the answer, the reasoning and tool calls apart.

One object holds what a response needs besides the prompt: the model and tokenizer, the
checkpoint's sampling defaults (``generation_config.json``) and the output parser its plugin
registered. ``zoo generate`` uses it, and so can a server or a chat loop::

    from zoo_registry.chat import TextGenerator

    gen = TextGenerator.load("hunyuan-tiny")
    for event in gen.stream("Hello", enable_thinking=False, max_tokens=64):
        print(event.reasoning or event.text, end="")
    result = gen.generate([{"role": "user", "content": "Hello"}], temperature=0)
    result.text, result.reasoning, result.tool_calls, result.finish_reason

Tokens come from mlx-lm's ``stream_generate`` (its KV caches, samplers and streaming
detokenizer); every id the checkpoint lists as an end of turn stops generation.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Union

from .stats import GenerationStats
from . import defaults as _defaults
from .formats import NONE, make_splitter, output_format
from .output import Event, Output
from .prompt import Prompt, render

PromptLike = Union[str, Sequence[dict]]


@dataclass
class Result(Output):
    """A whole response: ``text``, ``reasoning``, ``tool_calls``, plus how it was made."""

    raw: str = ""  # the decoded text as the model wrote it, tags included
    finish_reason: Optional[str] = None
    stats: GenerationStats = field(default_factory=GenerationStats)
    prompt: Optional[Prompt] = None
    sampling: Optional[_defaults.Sampling] = None


_OWN_WRAPPERS: "OrderedDict[tuple, tuple]" = OrderedDict()  # (id, stop ids, its own) -> (tokenizer, wrapper)
_OWN_WRAPPERS_KEPT = 8


def ensure_eos(tokenizer, ids) -> object:
    """An mlx-lm ``TokenizerWrapper`` that also stops at ``ids``; ``tokenizer`` itself is not changed.

    A wrapper that stops at all of ``ids`` already is returned as it is. Otherwise zoo makes its
    own: a copy of the wrapper with the larger stop set (sharing its detokenizer), or a new wrapper
    around a bare transformers tokenizer. It is made once per tokenizer and stop set and reused (a
    wrapper's detokenizer map is costly to build); the last few are kept.
    """
    from mlx_lm.tokenizer_utils import TokenizerWrapper

    wrapped = isinstance(tokenizer, TokenizerWrapper)
    own_ids = frozenset(tokenizer.eos_token_ids) if wrapped else None
    if wrapped and own_ids >= set(ids):
        return tokenizer
    key = (id(tokenizer), frozenset(ids), own_ids)
    kept = _OWN_WRAPPERS.get(key)
    if kept is not None and kept[0] is tokenizer:
        _OWN_WRAPPERS.move_to_end(key)
        return kept[1]
    if wrapped:
        wrapper = copy.copy(tokenizer)
        wrapper.eos_token_ids = own_ids | set(ids)  # the property's setter: a new set, the original's untouched
    else:
        wrapper = TokenizerWrapper(tokenizer, eos_token_ids=list(ids))
    _OWN_WRAPPERS[key] = (tokenizer, wrapper)
    while len(_OWN_WRAPPERS) > _OWN_WRAPPERS_KEPT:
        _OWN_WRAPPERS.popitem(last=False)
    return wrapper


def stream_events(model, tokenizer, prompt_ids: List[int], *, splitter, sampling: _defaults.Sampling, max_tokens: int = 256,
                  stats: Optional[GenerationStats] = None, raw: Optional[list] = None) -> Iterator[Event]:
    """Yield :class:`Event` s for one response; fill ``stats`` and append decoded pieces to ``raw``."""
    from mlx_lm.generate import stream_generate

    tokenizer = ensure_eos(tokenizer, sampling.eos_token_ids)
    for response in stream_generate(model, tokenizer, prompt_ids, max_tokens=max_tokens, sampler=sampling.sampler(),
                                     logits_processors=sampling.logits_processors()):
        if stats is not None:
            stats.prompt_tokens, stats.prompt_tps = response.prompt_tokens, response.prompt_tps
            stats.generation_tokens, stats.generation_tps = response.generation_tokens, response.generation_tps
            stats.peak_memory_gb, stats.finish_reason = response.peak_memory, response.finish_reason
        if raw is not None:
            raw.append(response.text)
        yield from splitter.feed(response.text)
    yield from splitter.finish()


class TextGenerator:
    """A loaded model with its sampling defaults and output parser (see the module docstring)."""

    def __init__(self, model, tokenizer, *, path=None, model_type: Optional[str] = None,
                 output_parser: Optional[str] = None, registry=None):
        self.model, self.tokenizer = model, tokenizer
        self.path = Path(path) if path is not None else None
        self.model_type = model_type
        self.output_format, self.output_parser = output_format(model_type, name=output_parser, tokenizer=tokenizer,
                                                               registry=registry)

    @classmethod
    def load(cls, source, *, output_parser: Optional[str] = None, **load_kwargs) -> "TextGenerator":
        """Load ``source`` (card, folder or repo id) with :func:`zoo_registry.load`'s options."""
        from ..loading import load

        model, tokenizer, info = load(source, return_info=True, **load_kwargs)
        model_type = info.raw_config.get("model_type") or info.architecture
        return cls(model, tokenizer, path=info.path, model_type=model_type, output_parser=output_parser)

    def sampling(self, origin: str = "argument", **overrides) -> _defaults.Sampling:
        """The checkpoint's defaults with ``overrides`` (``temperature``, ``top_p``, ...) on top."""
        return _defaults.for_checkpoint(self.path, origin=origin, **overrides)

    def render(self, prompt: PromptLike, *, system: Optional[str] = None, enable_thinking: Optional[bool] = None,
               chat_template: bool = True, tools: Optional[list] = None) -> Prompt:
        return render(self.tokenizer, prompt, system=system, enable_thinking=enable_thinking, chat_template=chat_template,
                      output_format=self.output_format, tools=tools)

    def stream(self, prompt: Union[PromptLike, Prompt], *, max_tokens: int = 256, enable_thinking: Optional[bool] = None,
               system: Optional[str] = None, chat_template: bool = True, tools: Optional[list] = None,
               sampling: Optional[_defaults.Sampling] = None, parse: bool = True, result: Optional[Result] = None,
               **overrides) -> Iterator[Event]:
        """Yield events (``.text``, ``.reasoning``, ``.tool_calls``) as the model writes.

        ``overrides``: ``temperature``, ``top_p``, ``top_k``, ``min_p``, ``repetition_penalty``
        over the checkpoint's defaults (or pass a resolved ``sampling``). ``parse=False`` yields
        the raw text as ``.text``. Pass a :class:`Result` to collect the whole response as well.
        """
        if not isinstance(prompt, Prompt):
            prompt = self.render(prompt, system=system, enable_thinking=enable_thinking, chat_template=chat_template, tools=tools)
        sampling = sampling or self.sampling(**overrides)
        fmt = self.output_format if parse else output_format(name=NONE)[0]
        result = result if result is not None else Result()
        result.prompt, result.sampling = prompt, sampling
        raw: List[str] = []
        for event in stream_events(self.model, self.tokenizer, prompt.ids, splitter=make_splitter(fmt, prompt.text),
                                   sampling=sampling, max_tokens=max_tokens, stats=result.stats, raw=raw):
            result.add(event)
            yield event
        result.raw, result.finish_reason = "".join(raw), result.stats.finish_reason

    def generate(self, prompt: Union[PromptLike, Prompt], **kwargs) -> Result:
        """The whole response at once (the same keyword arguments as :meth:`stream`)."""
        result = Result()
        for _ in self.stream(prompt, result=result, **kwargs):
            pass
        return result
