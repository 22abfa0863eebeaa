"""The serving engine in process: stop strings, queueing, cancellation, model swapping, prefix reuse."""

from __future__ import annotations

import itertools
import os

import pytest

from zoo_registry.errors import UnknownNameError
from zoo_registry.serve.engine import Engine, Job, StopMatcher


@pytest.mark.parametrize("text", ["abcSTOPdef", "STOP", "xxST", "no stop here", "SSTOP", "aSTOSTOPb"])
def test_stop_matcher_never_shows_any_part_of_a_stop_string_whatever_the_chunking(text):
    expected = text[: text.index("STOP")] if "STOP" in text else text
    for cuts in itertools.combinations(range(1, len(text)), min(3, max(len(text) - 1, 0))):
        pieces = [text[i:j] for i, j in zip((0,) + cuts, cuts + (len(text),))]
        m, shown, stopped = StopMatcher(["STOP"]), "", False
        for piece in pieces:
            out, stopped = m.feed(piece)
            shown += out
            assert "STOP" not in shown
            if stopped:
                break
        if not stopped:
            shown += m.flush()
        assert (shown, stopped) == (expected, "STOP" in text)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """Two names for the tiny model, one model in memory at a time."""
    import os

    os.environ.setdefault("ZOO_CACHE_DIR", str(tmp_path_factory.mktemp("zoo-cache")))
    loads = []

    def loader(name):
        from zoo_registry.chat import TextGenerator

        loads.append(name)
        return TextGenerator.load("hunyuan-tiny")

    e = Engine(["a", "b"], loader=loader, max_loaded=1)
    e.loads = loads
    yield e
    e.close()


def _run(engine, **kw):
    kw.setdefault("max_tokens", 6)
    kw.setdefault("sampling", {"temperature": 0.0})
    job = engine.submit(Job(**kw))
    events = list(job)
    return events, events[-1]


def test_jobs_name_served_models_only(engine):
    with pytest.raises(UnknownNameError):
        engine.submit(Job(model="c", prompt="x"))


def test_one_model_in_memory_and_swapping_back(engine):
    _run(engine, model="a", prompt="Hello")
    _run(engine, model="b", prompt="Hello")
    assert engine.loaded_names() == ["b"]
    _, last = _run(engine, model="a", prompt="Hello")
    assert engine.loaded_names() == ["a"] and engine.loads[-3:] == ["a", "b", "a"]
    # the reason follows the count: 6 tokens (max_tokens) is "length", fewer means an end-of-turn id stopped it
    assert 1 <= last.completion_tokens <= 6
    assert last.finish_reason == ("length" if last.completion_tokens == 6 else "stop")


def test_a_cancelled_job_never_runs_and_reports_it(engine):
    job = Job(model="a", prompt="Hello", max_tokens=50)
    job.cancel()
    engine.submit(job)
    events = list(job)
    assert len(events) == 1 and events[0].finish_reason == "cancelled"


def test_prefix_reuse_gives_the_tokens_a_fresh_cache_gives(engine):
    prompt = "The model is a small one and"
    _run(engine, model="a", prompt=prompt)
    events2, last2 = _run(engine, model="a", prompt=prompt + " then")
    assert last2.cached_tokens > 0
    engine.prompt_cache = False
    try:
        events3, last3 = _run(engine, model="a", prompt=prompt + " then")
        assert last3.cached_tokens == 0
        assert [t for e in events3 for t in e.tokens] == [t for e in events2 for t in e.tokens]
    finally:
        engine.prompt_cache = True


def test_errors_come_back_as_a_final_event(engine):
    events = list(engine.submit(Job(model="a", prompt=[], max_tokens=3)))
    assert events[-1].finish_reason == "error" and "empty" in str(events[-1].error)


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["chat", "hunyuan-tiny"]])
def test_serve_and_chat_refuse_several_ranks_before_loading(zoo, command, tmp_path):
    # Under `mlx.launch -n 2` every rank would load the whole model and bind the same port.
    proc = zoo(*command, env={**os.environ, "MLX_WORLD_SIZE": "2", "ZOO_CACHE_DIR": str(tmp_path)}, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert f"zoo {command[0]} runs in one process, but mlx.launch started 2 ranks" in proc.stderr
    assert "Traceback" not in proc.stderr and "loading" not in proc.stderr
