"""The streaming output splitter: reasoning, answer and tool calls apart, whatever the chunking.

Each case is split once whole (``split``) and then streamed in every chunking we can afford:
every chunking of short strings, every one- and two-cut chunking of longer ones, one character at
a time, and seeded random chunkings. The streamed events must add up to the whole-text result,
which must equal the expected split, and no event may carry tag text.
"""

from __future__ import annotations

import itertools
import json
import random

import pytest

from zoo_registry.chat.output import PLAIN, THINK, Event, OutputFormat, OutputSplitter, ToolCall, split
from zoo_hunyuan.chat import OUTPUT_FORMAT as HY

CALL = '[{"name": "get_weather", "arguments": {"city": "Beijing"}}, {"name": "now", "arguments": {}}]'
CASES = [
    # (id, format, prompt, text, reasoning, answer, tool-call names)
    ("a13b-thinking", HY, "", "<think>\nLet me add.\n</think>\n<answer>\n1 + 1 = 2\n</answer>", "Let me add.", "1 + 1 = 2", []),
    ("a13b-no-think", HY, "<|startoftext|>hi<|extra_0|><think>\n\n</think>\n", "<answer>\nHi there\n</answer>", "", "Hi there", []),
    ("no-tags", HY, "", "Just an answer, no tags.", "", "Just an answer, no tags.", []),
    ("unclosed-think", HY, "", "<think>\nstill thinking when cut", "still thinking when cut", "", []),
    ("unclosed-answer", HY, "", "<think>r</think><answer>cut off", "r", "cut off", []),
    ("cut-inside-close-tag", HY, "", "<think>r</think><answer>done</answ", "r", "done", []),
    ("stray-close", HY, "", "</think>hello</answer>", "", "hello", []),
    ("stray-middle", HY, "", "one</answer> two", "", "one two", []),
    ("nested-think", HY, "", "<think>a<think>b</think>c", "ab", "c", []),
    ("answer-ends-reasoning", HY, "", "<think>why<answer>because</answer>", "why", "because", []),
    ("prompt-opened-think", HY, "<|extra_0|><think>\n", "I should greet.\n</think>\n<answer>Hello!</answer>", "I should greet.", "Hello!", []),
    ("tool-calls", HY, "", f"<think>\nweather?\n</think>\n<answer><tool_calls>{CALL}</tool_calls></answer>", "weather?", "", ["get_weather", "now"]),
    ("stray-tool-close", HY, "", "one</tool_calls> two", "", "one two", []),
    ("unclosed-tool-block", HY, "", '<answer><tool_calls>[{"name": </answer>', "", '[{"name":', []),
    ("bad-tool-block", HY, "", "<answer><tool_calls>not json</tool_calls></answer>", "", "not json", []),
    ("lookalikes", HY, "", "a < b, <thinking> and </answers are text", "", "a < b, <thinking> and </answers are text", []),
    ("lone-lt-at-end", HY, "", "x <", "", "x <", []),
    ("cjk", HY, "", "<think>\n用户问的是1加1。\n</think>\n<answer>\n1加1等于2。\n</answer>", "用户问的是1加1。", "1加1等于2。", []),
    ("inner-whitespace", HY, "", "<answer>\nline one\n\nline two\n</answer>", "", "line one\n\nline two", []),
    ("think-generic", THINK, "", "<think>plan</think>\n\nThe answer.", "plan", "The answer.", []),
    ("plain-untouched", PLAIN, "", "  <think>kept</think> as is \n", "", "  <think>kept</think> as is \n", []),
    ("other-tags", OutputFormat(reasoning=("[[R]]", "[[/R]]")), "", "[[R]]x[[/R]]y[[", "x", "y", []),
    # an <answer> inside the reasoning ends it only if </think> never comes
    ("answer-mentioned-in-reasoning", HY, "", "<think>I will wrap it in <answer> tags later.</think><answer>42</answer>",
     "I will wrap it in <answer> tags later.", "42", []),
    ("answer-forgot-close-lines", HY, "", "<think>\nwhy\n<answer>\nbecause\n</answer>", "why", "because", []),
    ("answer-forgot-close-tools", HY, "", f"<think>w<answer><tool_calls>{CALL}</tool_calls></answer>", "w", "",
     ["get_weather", "now"]),
    # whitespace: one separator where the answer resumes after a block; no tag before, indentation kept
    ("space-around-block", THINK, "", "Hi <think>x</think> there", "x", "Hi there", []),
    ("space-before-block", THINK, "", "Hi <think>x</think>there", "x", "Hi there", []),
    ("no-space-no-space", THINK, "", "Hi<think>x</think>there", "x", "Hithere", []),
    ("indent-after-block", THINK, "", "Text:\n<think>x</think>\n    code", "x", "Text:\n    code", []),
    ("indented-no-tags", THINK, "", "    indented\n  code", "", "    indented\n  code", []),
    ("prompt-closed-think", THINK, "<think>\n\n</think>\n\n", "\n\nAnswer.", "", "Answer.", []),
]


def chunkings(text: str, seed: int = 0):
    n = len(text)
    if n <= 12:
        for mask in range(1 << max(n - 1, 0)):
            cuts = [i + 1 for i in range(n - 1) if mask >> i & 1]
            yield _cut(text, cuts)
        return
    for i in range(1, n):
        yield _cut(text, [i])
    for i, j in itertools.combinations(range(1, n), 2):
        yield _cut(text, [i, j])
    yield list(text)
    rng = random.Random(seed)
    for _ in range(50):
        yield _cut(text, sorted(rng.sample(range(1, n), rng.randint(1, min(n - 1, 12)))))


def _cut(text, cuts):
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:])]


def stream(fmt, prompt, chunks):
    splitter = OutputSplitter(fmt, prompt=prompt)
    events = []
    for chunk in chunks:
        events += splitter.feed(chunk)
    return events + splitter.finish()


def totals(events):
    return ("".join(e.reasoning for e in events), "".join(e.text for e in events),
            [c.name for e in events for c in e.tool_calls])


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_whole_text_split(case):
    _, fmt, prompt, text, reasoning, answer, calls = case
    out = split(text, fmt, prompt=prompt)
    assert (out.reasoning, out.text, [c.name for c in out.tool_calls]) == (reasoning, answer, calls)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_chunking_streams_the_same_split(case):
    _, fmt, prompt, text, reasoning, answer, calls = case
    tags = [t for t in fmt.tags()] if fmt is not PLAIN else []
    count = 0
    for chunks in chunkings(text):
        events = stream(fmt, prompt, chunks)
        assert totals(events) == (reasoning, answer, calls), chunks
        for e in events:
            assert sum(bool(x) for x in (e.text, e.reasoning, e.tool_calls)) == 1, e  # one kind per event, never empty
            for tag in tags:  # no tag text, unless the reasoning mentions it
                assert tag not in e.text and (tag not in e.reasoning or tag in reasoning), (tag, e, chunks)
        count += 1
    assert count >= min(2 ** (len(text) - 1), len(text))


def test_tool_calls_are_parsed_with_arguments():
    out = split(f"<answer><tool_calls>{CALL}</tool_calls></answer>", HY)
    assert out.tool_calls == [ToolCall("get_weather", {"city": "Beijing"}), ToolCall("now", {})]
    assert out.text == "" and json.loads(json.dumps(out.as_dict()))["tool_calls"][0]["name"] == "get_weather"


def test_text_is_released_as_soon_as_it_cannot_be_a_tag():
    s = OutputSplitter(HY)
    assert s.feed("Hi </an") == [Event(text="Hi")]  # the space waits for what follows, "</an" may be a tag
    assert s.feed("t") == [Event(text=" </ant")]  # not a tag after all: released, in order
    assert s.feed("</answer>") == [] and s.finish() == []


def test_reasoning_streams_before_the_block_closes():
    s = OutputSplitter(HY)
    assert s.feed("<think>\nfirst ") == [Event(reasoning="first")]
    assert s.feed("second") == [Event(reasoning=" second")]
    assert s.feed("</think><answer>A") == [Event(text="A")]


def test_an_answer_tag_in_reasoning_is_held_until_the_reasoning_closes_or_the_output_ends():
    s = OutputSplitter(HY)
    assert s.feed("<think>plan: wrap in ") == [Event(reasoning="plan: wrap in")]
    assert s.feed("<answer> tags") == []  # held: a mention, or the answer of a model that forgot </think>
    assert s.feed("</think><answer>42") == [Event(reasoning=" <answer> tags"), Event(text="42")]
    assert s.finish() == []
    s = OutputSplitter(HY)
    assert s.feed("<think>why<answer>because") == [Event(reasoning="why")]
    assert s.feed(" it is") == []
    assert s.finish() == [Event(text="because it is")]


def test_formats_reject_tags_that_contain_one_another():
    with pytest.raises(ValueError, match="must not contain"):
        OutputFormat(reasoning=("<t>", "</t>"), answer=("<t>x", "</tx>"))
    with pytest.raises(ValueError, match="pair of non-empty strings"):
        OutputFormat(reasoning=("<think>",))
