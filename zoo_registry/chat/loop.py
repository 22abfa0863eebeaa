"""The one generation loop behind ``zoo generate``, ``zoo chat`` and ``zoo serve``.

:func:`steps` runs mlx-lm's ``stream_generate`` (its KV caches, samplers, logits processors and
streaming detokenizer) and yields one :class:`Step` per generated token, then a final one. A step
carries the token id, its log-probabilities (mlx-lm's log-softmax over the vocabulary) and what the
output splitter made of its text (answer, reasoning, tool calls); the final step carries the finish
reason and what the splitter still held. Every id the checkpoint lists as an end of turn stops
generation (:func:`ensure_eos`).

What a server needs besides is optional: a KV cache to reuse (``prompt_cache``, holding a prefix
of the prompt already), extra logits processors (``logit_bias``, presence/frequency penalties),
stop strings (no part of one is ever shown, however the detokenizer splits it) and ``cancelled``,
asked before each token is shown. :func:`~zoo_registry.chat.stream_events` (answer, reasoning and
tool-call events only) and :class:`~zoo_registry.serve.engine.Engine` are both this loop.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, List, Optional, Sequence

from .output import Event, held_suffix

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


class StopMatcher:
    """Hold back text that could be the start of a stop string; report when one is complete.

    ``feed(text)`` returns ``(safe_text, stopped)``: the text that can be shown (never any part
    of a stop string) and whether a stop string was completed.
    """

    def __init__(self, stops: Sequence[str]):
        self.stops = [s for s in stops if s]
        self.pending = ""

    def feed(self, text: str):
        if not self.stops:
            return text, False
        buf = self.pending + text
        hits = [buf.find(s) for s in self.stops if s in buf]
        if hits:
            self.pending = ""
            return buf[:min(hits)], True
        keep = held_suffix(buf, self.stops)
        self.pending = buf[len(buf) - keep:] if keep else ""
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


@dataclass
class Step:
    """One generated ``token`` with its ``logprobs`` and the splitter's ``events`` for its text; or,
    with ``final``, the end of the response: ``finish_reason`` (``"stop"``, ``"length"`` or
    ``"cancelled"``) and the events the splitter still held."""

    token: Optional[int] = None
    logprobs: Any = None  # an mx.array of log-probabilities over the vocabulary (mlx-lm's)
    events: List[Event] = field(default_factory=list)
    generation_tokens: int = 0  # tokens generated so far (mlx-lm's count)
    final: bool = False
    finish_reason: Optional[str] = None


def steps(model, tokenizer, prompt_ids: List[int], *, splitter, sampling, max_tokens: int = 256, stop: Sequence[str] = (),
          logits_processors: Optional[list] = None, prompt_cache: Optional[list] = None,
          cancelled: Optional[Callable[[], bool]] = None, stats=None, raw: Optional[list] = None) -> Iterator[Step]:
    """Generate a response to ``prompt_ids`` (see the module docstring); fill ``stats``
    (a :class:`~.stats.GenerationStats`) and append the decoded pieces to ``raw`` as it goes.

    ``sampling`` (a :class:`~.defaults.Sampling`) gives the sampler, its repetition penalty and the
    end-of-turn ids; ``logits_processors`` run after its own. With ``prompt_cache`` the model
    continues from what the cache holds and ``prompt_ids`` is only the rest of the prompt.
    """
    from mlx_lm.generate import stream_generate

    tokenizer = ensure_eos(tokenizer, sampling.eos_token_ids)
    processors = list(sampling.logits_processors() or []) + list(logits_processors or [])
    stops = StopMatcher(stop)
    finish, n = "length", 0
    for response in stream_generate(model, tokenizer, prompt_ids, max_tokens=max_tokens, sampler=sampling.sampler(),
                                     logits_processors=processors or None, prompt_cache=prompt_cache):
        if cancelled is not None and cancelled():
            finish = "cancelled"
            break
        n = response.generation_tokens
        if stats is not None:
            stats.record(response)
        if raw is not None:
            raw.append(response.text)
        piece, stopped = stops.feed(response.text)
        yield Step(int(response.token), response.logprobs, splitter.feed(piece) if piece else [], n)
        if stopped:
            finish = "stop"
            break
        if response.finish_reason:
            finish = response.finish_reason
    tail = stops.flush() if finish != "stop" else ""
    if stats is not None:
        stats.finish_reason = finish
    yield Step(events=(splitter.feed(tail) if tail else []) + list(splitter.finish()), generation_tokens=n, final=True,
               finish_reason=finish)
