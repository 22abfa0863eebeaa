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

Tokens come from the one generation loop of :mod:`.loop` (mlx-lm's ``stream_generate``, its KV
caches, samplers and streaming detokenizer), which ``zoo serve`` runs too; every id the checkpoint
lists as an end of turn stops generation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Union

from .stats import GenerationStats
from . import defaults as _defaults
from .formats import NONE, make_splitter, output_format
from .loop import ensure_eos, steps  # noqa: F401 - ensure_eos was defined here
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


def stream_events(model, tokenizer, prompt_ids: List[int], *, splitter, sampling: _defaults.Sampling, max_tokens: int = 256,
                  stats: Optional[GenerationStats] = None, raw: Optional[list] = None, **options) -> Iterator[Event]:
    """Yield :class:`Event` s for one response; fill ``stats`` and append decoded pieces to ``raw``.

    ``options``: what :func:`.loop.steps` takes besides (``stop``, ``logits_processors``,
    ``prompt_cache``, ``cancelled``); use :func:`.loop.steps` itself for token ids and log-probabilities.
    """
    for step in steps(model, tokenizer, prompt_ids, splitter=splitter, sampling=sampling, max_tokens=max_tokens,
                      stats=stats, raw=raw, **options):
        yield from step.events


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
        return cls(model, tokenizer, path=info.path, model_type=model_type, output_parser=output_parser,
                   registry=load_kwargs.get("registry"))

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
