"""`zoo generate` end to end on an A13B-like folder: the real chat template, generation_config.json
defaults and stop ids, the thinking switch, and the reasoning split (see tests/chat_fixtures.py).

The CLI runs through its ``main`` in this process (one run as a real subprocess); stdout and
stderr are captured, so stderr is not a terminal: reasoning is hidden unless --show-thinking.
"""

from __future__ import annotations

import json
import shutil

import pytest

import chat_fixtures as cf
from chat_fixtures import run  # noqa: F401 - the CLI fixture
from zoo_registry.cli.main import main

MESSAGES = [{"role": "user", "content": cf.PROMPT}]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("a13b") / "hunyuan-a13b-like"
    facts = cf.build(path)
    return path, facts


def test_defaults_from_generation_config_apply_and_are_reported(folder, run):
    path, facts = folder
    out = run(path, "--prompt", cf.PROMPT, "--max-tokens", 80)
    assert out.out == cf.ANSWER + "\n"  # the answer only: no reasoning, no tags, nothing after the stop id
    source = path / "generation_config.json"
    assert f"zoo: sampling: temperature 0.7, top_p 0.8, top_k 20, repetition_penalty 1.05 ({source})" in out.err
    assert f"stops at {facts['eos']} <|eos|>, {facts['stop']} <|pad|> (the same file)" in out.err
    assert "zoo: thinking: template default; output parser: hunyuan" in out.err
    assert cf.REASONING not in out.err  # stderr is not a terminal: reasoning hidden by default
    assert f"Generation: {len(facts['script_ids']) + 1} tokens" in out.err  # the script and its stop id (mlx-lm counts it)


def test_show_thinking_prints_the_reasoning_on_stderr_undimmed_when_piped(folder, run):
    path, _ = folder
    out = run(path, "--prompt", cf.PROMPT, "--max-tokens", 80, "--show-thinking")
    assert out.out == cf.ANSWER + "\n"
    assert cf.REASONING in out.err and "\x1b[" not in out.err and "<think>" not in out.err


def test_overrides_win_and_json_carries_both_fields(folder, run):
    path, facts = folder
    out = json.loads(run(path, "--prompt", cf.PROMPT, "--max-tokens", 80, "--json", "--temp", "0", "--top-k", "5").out)
    assert (out["text"], out["reasoning"], out["tool_calls"]) == (cf.ANSWER, cf.REASONING, [])
    assert out["raw"] == cf.SCRIPT  # stopped at the listed <|pad|>: nothing after it
    assert out["finish_reason"] == "stop"
    assert out["generation_tokens"] == len(facts["script_ids"]) + 1  # the script, then the stop id
    s, source = out["sampling"], str(path / "generation_config.json")
    assert (s["temperature"], s["sources"]["temperature"]) == (0.0, "command line") and s["greedy"] is True
    assert (s["top_k"], s["sources"]["top_k"]) == (5, "command line")
    assert (s["top_p"], s["sources"]["top_p"]) == (0.8, source)
    assert (s["repetition_penalty"], s["sources"]["repetition_penalty"]) == (1.05, source)
    assert s["eos_token_ids"] == [facts["eos"], facts["stop"]]
    assert out["prompt_tokens"] == len(facts["prompt_ids"])


def test_raw_prints_the_tags(folder, run):
    path, _ = folder
    assert run(path, "--prompt", cf.PROMPT, "--max-tokens", 80, "--raw", "--quiet").out == cf.SCRIPT + "\n"


def test_no_think_renders_the_template_as_transformers_does(folder, run):
    from zoo_hunyuan.chat import OUTPUT_FORMAT

    from zoo_registry import load
    from zoo_registry.chat import render

    path, facts = folder
    _, tokenizer = load(str(path))
    off = render(tokenizer, cf.PROMPT, enable_thinking=False, output_format=OUTPUT_FORMAT)
    assert off.ids == cf.transformers_ids(path, MESSAGES, enable_thinking=False)
    assert off.text.endswith("<think>\n\n</think>\n") and "enable_thinking=False" in off.thinking
    default = render(tokenizer, cf.PROMPT, output_format=OUTPUT_FORMAT)
    assert default.ids == cf.transformers_ids(path, MESSAGES) == facts["prompt_ids"] != off.ids
    assert render(tokenizer, cf.PROMPT, enable_thinking=True, output_format=OUTPUT_FORMAT).ids == default.ids
    out = json.loads(run(path, "--prompt", cf.PROMPT, "--max-tokens", 12, "--no-think", "--json").out)
    assert out["prompt_tokens"] == len(off.ids) and "enable_thinking=False" in out["thinking"]
    for tag in OUTPUT_FORMAT.tags():
        assert tag not in out["text"]


def test_python_api_streams_events_and_stops_only_at_listed_ids(folder, tmp_path):
    from zoo_registry.chat import TextGenerator

    path, facts = folder
    gen = TextGenerator.load(str(path))
    assert gen.output_parser == "hunyuan"
    events = list(gen.stream(cf.PROMPT, max_tokens=80, temperature=0.0))
    assert "".join(e.reasoning for e in events) == cf.REASONING
    assert "".join(e.text for e in events) == cf.ANSWER
    assert len(events) > 2  # streamed in pieces, not one block at the end
    result = gen.generate(MESSAGES, max_tokens=80)  # the checkpoint's sampling (temperature 0.7)
    assert (result.text, result.reasoning, result.finish_reason) == (cf.ANSWER, cf.REASONING, "stop")
    assert result.sampling.temperature == 0.7

    # the same folder without <|pad|> in the stop list runs past it into the text after it
    other = tmp_path / "no-second-eos"
    shutil.copytree(path, other)
    config = json.loads((other / "generation_config.json").read_text())
    config["eos_token_id"] = [facts["eos"]]
    (other / "generation_config.json").write_text(json.dumps(config))
    longer = TextGenerator.load(str(other)).generate(cf.PROMPT, max_tokens=len(facts["script_ids"]) + 4, temperature=0.0)
    assert longer.raw.startswith(cf.SCRIPT) and longer.raw != cf.SCRIPT and longer.finish_reason == "length"


def test_the_real_cli_in_a_subprocess(folder, zoo, isolated_home):
    import os

    path, _ = folder
    env = dict(os.environ, ZOO_PROGRESS="0")
    proc = zoo("generate", path, "--prompt", cf.PROMPT, "--max-tokens", 80, "--hide-thinking", env=env, check=0)
    assert proc.stdout == cf.ANSWER + "\n" and cf.REASONING not in proc.stderr and "Traceback" not in proc.stderr


def test_on_a_terminal_reasoning_is_shown_dimmed_on_stderr(folder, isolated_home, monkeypatch):
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    path, _ = folder
    monkeypatch.setenv("ZOO_PROGRESS", "0")
    monkeypatch.delenv("NO_COLOR", raising=False)
    out, err = io.StringIO(), Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    assert main(["generate", str(path), "--prompt", cf.PROMPT, "--max-tokens", "80"]) == 0
    assert out.getvalue() == cf.ANSWER + "\n"
    shown = err.getvalue()
    assert "\x1b[2m" in shown and "\x1b[0m" in shown
    dimmed = "".join(part.split("\x1b[0m")[0] for part in shown.split("\x1b[2m")[1:])
    assert dimmed == cf.REASONING  # every reasoning piece dimmed, nothing else
    monkeypatch.setenv("NO_COLOR", "1")
    err.seek(0), err.truncate()
    assert main(["generate", str(path), "--prompt", cf.PROMPT, "--max-tokens", "80"]) == 0
    assert cf.REASONING in err.getvalue() and "\x1b[" not in err.getvalue()


def test_tool_calls_print_as_lines_on_stdout(capsys):
    from zoo_registry.chat import Event, ToolCall
    from zoo_registry.cli.generate_cmd import Printer

    printer = Printer(show_reasoning=True, dim=False)
    printer(Event(reasoning="need the weather"))
    printer(Event(tool_calls=(ToolCall("get_weather", {"city": "北京"}), ToolCall("now", {}))))
    out = capsys.readouterr()
    assert out.out == 'tool call: get_weather {"city": "北京"}\ntool call: now {}\n'
    assert out.err == "need the weather\n\n"
