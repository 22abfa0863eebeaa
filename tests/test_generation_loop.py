"""One generation loop: ``zoo_registry.chat.steps`` serves ``zoo generate``, ``zoo chat`` and ``zoo serve``.

The loop is checked against mlx-lm called directly (the same model, sampler and prompt through
``mlx_lm.generate.stream_generate``): the same token ids and log-probabilities, a KV cache holding
the start of the prompt continues exactly where a fresh run would, stop strings end it without
showing any part of them, and cancellation ends it before the next token. A source check keeps it
the only caller of mlx-lm's generation functions in the package.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

import zoo_registry

PROMPT = [5, 17, 42, 7, 99, 23, 64, 11]
N = 12


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    os.environ.setdefault("ZOO_CACHE_DIR", str(tmp_path_factory.mktemp("zoo-cache")))
    from zoo_registry.chat import TextGenerator

    return TextGenerator.load("hunyuan-tiny")


def _steps(gen, prompt=PROMPT, **kw):
    from zoo_registry.chat import PLAIN, steps

    return list(steps(gen.model, gen.tokenizer, prompt, splitter=PLAIN.splitter(), sampling=gen.sampling(temperature=0.0),
                      max_tokens=kw.pop("max_tokens", N), **kw))


def test_tokens_and_logprobs_are_mlx_lms(gen):
    import mlx.core as mx
    from mlx_lm.generate import stream_generate
    from mlx_lm.sample_utils import make_sampler

    from zoo_registry.chat.loop import ensure_eos

    sampling = gen.sampling(temperature=0.0)
    theirs = list(stream_generate(gen.model, ensure_eos(gen.tokenizer, sampling.eos_token_ids), PROMPT, max_tokens=N,
                                  sampler=make_sampler(temp=0.0)))
    ours = _steps(gen)
    assert ours[-1].final and not any(s.final for s in ours[:-1])
    assert [s.token for s in ours[:-1]] == [int(r.token) for r in theirs]
    for s, r in zip(ours[:-1], theirs):
        assert mx.array_equal(s.logprobs, r.logprobs)
    assert ours[-1].finish_reason == theirs[-1].finish_reason
    assert ours[-1].generation_tokens == theirs[-1].generation_tokens


def test_a_cache_holding_the_start_of_the_prompt_continues_it(gen):
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    fresh = [s.token for s in _steps(gen)[:-1]]
    cache = make_prompt_cache(gen.model)
    mx.eval(gen.model(mx.array(PROMPT[:5])[None], cache=cache))  # prefill the first five tokens
    assert cache[0].offset == 5
    continued = [s.token for s in _steps(gen, PROMPT[5:], prompt_cache=cache)[:-1]]
    assert continued == fresh
    assert cache[0].offset >= len(PROMPT) + len(fresh) - 1  # the cache grew in place


def test_stop_strings_end_the_response_unseen(gen):
    full = "".join(e.text for s in _steps(gen) for e in s.events)
    assert len(full.strip()) > 4, full
    stop = full.strip()[2:4]  # a stop string somewhere inside the greedy text
    shown_steps = _steps(gen, stop=[stop])
    shown = "".join(e.text for s in shown_steps for e in s.events)
    assert shown_steps[-1].finish_reason == "stop"
    assert shown == full[: full.index(stop)].rstrip() and stop not in shown  # the splitter holds back trailing space


def test_cancelling_ends_before_the_next_token(gen):
    from zoo_registry.chat import PLAIN, steps

    taken, last = [], None
    for s in steps(gen.model, gen.tokenizer, PROMPT, splitter=PLAIN.splitter(), sampling=gen.sampling(temperature=0.0),
                   max_tokens=N, cancelled=lambda: len(taken) >= 3):
        if s.final:
            last = s
            break
        taken.append(s.token)
    assert len(taken) == 3 and last.finish_reason == "cancelled" and last.generation_tokens == 3


def test_the_loop_is_the_only_caller_of_mlx_lms_generation():
    root = Path(zoo_registry.__file__).resolve().parent
    callers = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "mlx_lm.generate":
                if {a.name for a in node.names} & {"stream_generate", "generate_step", "generate"}:
                    callers.add(path.relative_to(root).as_posix())
    assert callers == {"chat/loop.py"}
