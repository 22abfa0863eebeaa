"""Split what a model writes into reasoning, answer text and tool calls, as it streams.

Reasoning models wrap their chain of thought in tags (``<think>…</think>``), some wrap the answer
too (Hunyuan-A13B: ``<answer>…</answer>``) and put tool calls in a block of their own
(``<tool_calls>[…]</tool_calls>``). A plugin declares those facts once as an :class:`OutputFormat`
(hook ``register_output_parsers``); :class:`OutputSplitter` turns decoded text chunks, in whatever
pieces the detokenizer hands them over, into typed :class:`Event` s:

- tag text never reaches the answer, even when a tag is split across tokens: the splitter holds
  back only a suffix that could still become a tag (``"</ans"``), and releases it as soon as the
  next chunk shows it is not one;
- the outcome does not depend on the chunking: :func:`split` on the whole text gives exactly what
  the streamed events add up to (tests check every chunking of their strings);
- whitespace next to tags is dropped (the ``\\n`` in ``<think>\\n…\\n</think>\\n<answer>\\n``), so
  trailing whitespace is held back until text follows it; when the answer resumes after a block
  (``Hi <think>…</think> there``) one separator is kept, the whitespace after the block if there
  is any, else the whitespace before it; output with no tag before it keeps its leading
  whitespace (an indented first line);
- a prompt that already opened the reasoning block (a template ending in ``<think>\\n``) starts the
  splitter inside it; a stray closing tag is dropped; a nested opening tag inside reasoning is
  dropped (no nesting); an unclosed block at the end keeps what it had; a held-back partial tag of
  two or more characters at the end (output cut off inside ``</answer``) is dropped;
- an answer-opening tag inside the reasoning (``<answer>``) is either the reasoning mentioning it
  or a model that forgot ``</think>``; only what follows tells, so the rule is: it ends the
  reasoning only if the reasoning's closing tag never arrives. The reasoning streams up to that
  tag; what follows it is held back (neither reasoning nor answer) until ``</think>`` shows it was
  reasoning (it is released as reasoning, the mention included) or the output ends without it
  (it becomes the answer, at :meth:`~OutputSplitter.finish`). So nothing is ever shown as one kind
  and turns out to be the other; the price is that a model that forgot ``</think>`` shows its
  answer at the end instead of streaming it;
- a tool-call block is buffered until it closes and parsed by :meth:`OutputFormat.parse_tool_calls`
  (a JSON list of ``{"name", "arguments"}`` by default); a block that does not parse (or never
  closes) is given back as answer text, without any tag text; a stray closing tag is dropped.

vLLM's Hunyuan-A13B parser matches fixed token-id sequences instead, so ``</answer>`` leaks into
the content whenever the model tokenizes the tags differently (vllm-project/vllm#58127).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

TEXT, REASONING, TOOL = "text", "reasoning", "tool_calls"


@dataclass(frozen=True)
class ToolCall:
    """One call the model asked for: a function name and its arguments (a dict, or a string)."""

    name: str
    arguments: Any

    def as_dict(self) -> dict:
        return {"name": self.name, "arguments": self.arguments}


@dataclass(frozen=True)
class Event:
    """A piece of output: answer ``text``, ``reasoning``, or parsed ``tool_calls`` (one is set)."""

    text: str = ""
    reasoning: str = ""
    tool_calls: Tuple[ToolCall, ...] = ()

    @property
    def kind(self) -> str:
        return TOOL if self.tool_calls else (REASONING if self.reasoning else TEXT)


@dataclass
class Output:
    """A whole response, split: the answer, the reasoning and the tool calls."""

    text: str = ""
    reasoning: str = ""
    tool_calls: List[ToolCall] = field(default_factory=list)

    def add(self, event: Event) -> None:
        self.text += event.text
        self.reasoning += event.reasoning
        self.tool_calls.extend(event.tool_calls)

    def as_dict(self) -> dict:
        return {"text": self.text, "reasoning": self.reasoning, "tool_calls": [c.as_dict() for c in self.tool_calls]}


def _pair(value, what):
    if value is None:
        return None
    if not (isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, str) and v for v in value)):
        raise ValueError(f"OutputFormat.{what} must be a pair of non-empty strings (open, close), got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class OutputFormat:
    """The tag facts of one model family's output (and its thinking switch).

    - ``reasoning``: ``(open, close)`` around the chain of thought, e.g. ``("<think>", "</think>")``.
    - ``answer``: ``(open, close)`` wrapped around the answer; the tags are dropped, the content kept.
    - ``tool_calls``: ``(open, close)`` around a block of tool calls (see :meth:`parse_tool_calls`).
    - ``thinking_prefixes``: ``(on, off)`` strings the model card says to put before the user's
      message to switch thinking on or off (``("/think", "/no_think")``); used only when the chat
      template has no ``enable_thinking`` variable.
    - ``strip``: drop whitespace at the start and end of each block.

    Subclass and override :meth:`parse_tool_calls` for another tool-call syntax.
    """

    reasoning: Optional[Tuple[str, str]] = ("<think>", "</think>")
    answer: Optional[Tuple[str, str]] = None
    tool_calls: Optional[Tuple[str, str]] = None
    thinking_prefixes: Optional[Tuple[str, str]] = None
    strip: bool = True
    description: str = ""

    def __post_init__(self):
        for name in ("reasoning", "answer", "tool_calls", "thinking_prefixes"):
            object.__setattr__(self, name, _pair(getattr(self, name), name))
        tags = self.tags()
        for a in tags:
            for b in tags:
                if a != b and a in b:
                    raise ValueError(f"OutputFormat: tag {a!r} is part of tag {b!r}; tags must not contain one another")

    def tags(self) -> List[str]:
        return [t for pair in (self.reasoning, self.answer, self.tool_calls) if pair for t in pair]

    def parse_tool_calls(self, body: str) -> List[ToolCall]:
        """The calls in one tool-call block: a JSON list of ``{"name": ..., "arguments": ...}``.

        Raises ``ValueError`` when the block is not that; the splitter then keeps it as text.
        """
        data = json.loads(body)
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise ValueError("a tool-call block must hold a JSON list")
        calls = []
        for item in data:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise ValueError(f"a tool call must be an object with a string 'name', got {item!r}")
            calls.append(ToolCall(item["name"], item.get("arguments", {})))
        return calls

    def splitter(self, prompt: str = "") -> "OutputSplitter":
        return OutputSplitter(self, prompt=prompt)


PLAIN = OutputFormat(reasoning=None, strip=False, description="no tags: everything is answer text")
THINK = OutputFormat(description="reasoning in <think>…</think>, the rest is the answer")


class OutputSplitter:
    """Streaming splitter: ``feed(chunk)`` and ``finish()`` return lists of :class:`Event`.

    ``prompt`` is the rendered prompt text (or its end): if it ends inside an opened reasoning
    block, the splitter starts in reasoning.
    """

    def __init__(self, fmt: OutputFormat, prompt: str = ""):
        self.fmt = fmt
        r, a, t = fmt.reasoning, fmt.answer, fmt.tool_calls
        drop = ("drop", None)
        text_tags, reasoning_tags = {}, {}
        if r:
            text_tags[r[0]] = ("enter", REASONING)
            text_tags[r[1]] = drop
            reasoning_tags[r[1]] = ("enter", TEXT)
            reasoning_tags[r[0]] = drop
        if a:
            text_tags[a[0]] = text_tags[a[1]] = drop
            reasoning_tags[a[0]] = ("hold", None)  # the answer began, unless </think> still follows (see above)
            reasoning_tags[a[1]] = drop
        if t:
            text_tags[t[0]] = ("enter", TOOL)
            text_tags[t[1]] = drop
        self._tags = {TEXT: text_tags, REASONING: reasoning_tags, TOOL: {t[1]: ("enter", TEXT)} if t else {}}
        self.mode = TEXT
        tail = prompt.rstrip()
        if r and tail.endswith(r[0]):
            self.mode = REASONING
        self._buf = ""  # text not yet classified (may hold a partial tag)
        self._ws = ""  # trailing whitespace held back in the current mode
        self._start = bool(r and tail.endswith((r[0], r[1])))  # the prompt ends in a tag: leading whitespace goes
        self._emitted = set()  # the modes that have shown text
        self._left_ws: Dict[str, str] = {}  # whitespace held back in a mode when it was left
        self._resume: Optional[Tuple[str, str]] = None  # (before, after) whitespace while a mode resumes
        self._held: Optional[str] = None  # raw text after an answer tag inside reasoning (see above)
        self._tool = ""  # body of an open tool-call block

    # -- public ---------------------------------------------------------------------------------
    def feed(self, chunk: str) -> List[Event]:
        self._buf += chunk
        out: List[Event] = []
        while True:
            if self._held is not None and not self._hold(out):
                return _merge(out)
            tags = self._tags[self.mode]
            hit = _earliest(self._buf, tags)
            if hit is None:
                keep = held_suffix(self._buf, tags)
                self._emit(self._buf[: len(self._buf) - keep], out, final=False)
                self._buf = self._buf[len(self._buf) - keep:]
                return _merge(out)
            i, tag = hit
            self._emit(self._buf[:i], out, final=False)
            self._buf = self._buf[i + len(tag):]
            action, target = tags[tag]
            if action == "enter":
                self._enter(target, out)
            elif action == "hold":
                self._held = tag
            elif self.mode not in self._emitted:  # a dropped tag before any text: whitespace after it goes too
                self._start, self._ws = True, ""

    def finish(self) -> List[Event]:
        out: List[Event] = []
        if self._held is not None:  # the reasoning never closed: the answer tag did end it
            rest, self._held, self._buf = self._held[len(self.fmt.answer[0]):] + self._buf, None, ""
            self._enter(TEXT, out)
            out += self.feed(rest)
        rest = self._buf
        self._buf = ""
        if len(rest) >= 2 and any(t.startswith(rest) for t in self._tags[self.mode]):
            rest = ""  # cut off inside a tag: never show half a tag
        self._emit(rest, out, final=True)
        if self.mode == TOOL:
            self._leave(out)
            self.mode = TEXT
        self._ws = ""
        return _merge(out)

    # -- internals ------------------------------------------------------------------------------
    def _hold(self, out: List[Event]) -> bool:
        """Hold raw text after an answer tag in reasoning; ``True`` once the reasoning closed."""
        close = self.fmt.reasoning[1]
        i = self._buf.find(close)
        if i < 0:
            keep = held_suffix(self._buf, [close])
            self._held += self._buf[: len(self._buf) - keep]
            self._buf = self._buf[len(self._buf) - keep:]
            return False
        held, self._held, self._buf = self._held + self._buf[:i], None, self._buf[i + len(close):]
        drops = [tag for tag, (action, _) in self._tags[REASONING].items() if action == "drop"]
        for tag in drops:  # the mention stays, as reasoning; the tags reasoning drops are dropped as always
            held = held.replace(tag, "")
        self._emit(held, out, final=False)
        self._enter(TEXT, out)
        return True

    def _enter(self, target: str, out: List[Event]) -> None:
        self._leave(out)
        self._left_ws[self.mode] = self._ws
        resume = target in self._emitted
        self._resume = (self._left_ws.get(target, ""), "") if resume else None
        self.mode, self._ws, self._start = target, "", not resume

    def _emit(self, text: str, out: List[Event], final: bool) -> None:
        if self.mode == TOOL:
            self._tool += text
            return
        if not self.fmt.strip:
            if text:
                out.append(_event(self.mode, text))
            return
        if self._resume is not None:  # one separator between the text before a block and after it
            before, after = self._resume
            stripped = text.lstrip()
            after += text[: len(text) - len(stripped)]
            if not stripped:
                self._resume = (before, after)
                return
            self._resume, text = None, (after or before) + stripped
        text = self._ws + text
        self._ws = ""
        if self._start:
            text = text.lstrip()
        body = text.rstrip()
        if not final:
            self._ws = text[len(body):]
        if body:
            self._start = False
            self._emitted.add(self.mode)
            out.append(_event(self.mode, body))

    def _leave(self, out: List[Event]) -> None:
        """Close the current block (on a mode change): a tool-call block is parsed now."""
        if self.mode != TOOL:
            return
        body, self._tool = self._tool, ""
        try:
            calls = self.fmt.parse_tool_calls(body.strip())
        except (ValueError, TypeError):
            calls = None
        if calls:
            out.append(Event(tool_calls=tuple(calls)))
        else:
            for tag in self.fmt.tags():  # given back as text: without tag text
                body = body.replace(tag, "")
            if body.strip():
                self._emitted.add(TEXT)
                out.append(Event(text=body.strip()))


def _event(mode: str, text: str) -> Event:
    return Event(reasoning=text) if mode == REASONING else Event(text=text)


def _earliest(buf: str, tags: Dict[str, Any]) -> Optional[Tuple[int, str]]:
    best = None
    for tag in tags:
        i = buf.find(tag)
        if i >= 0 and (best is None or i < best[0]):
            best = (i, tag)
    return best


def held_suffix(buf: str, tags: Iterable[str]) -> int:
    """Length of the longest suffix of ``buf`` that is a proper prefix of a tag (or stop string):
    what a streaming reader must hold back until the next chunk shows whether it completes."""
    longest = 0
    for tag in tags:
        for k in range(min(len(tag) - 1, len(buf)), longest, -1):
            if tag.startswith(buf[-k:]):
                longest = k
                break
    return longest


def _merge(events: List[Event]) -> List[Event]:
    merged: List[Event] = []
    for e in events:
        if merged and not e.tool_calls and not merged[-1].tool_calls and e.kind == merged[-1].kind:
            last = merged.pop()
            e = Event(text=last.text + e.text, reasoning=last.reasoning + e.reasoning)
        merged.append(e)
    return merged


def split(text: str, fmt: Optional[OutputFormat] = None, prompt: str = "") -> Output:
    """Split a whole response at once (the same result as streaming it in any chunks).

    ``fmt`` defaults to :data:`THINK` (``<think>…</think>``); pass :data:`PLAIN` for no parsing.
    """
    splitter = OutputSplitter(fmt or THINK, prompt=prompt)
    out = Output()
    for event in splitter.feed(text) + splitter.finish():
        out.add(event)
    return out
