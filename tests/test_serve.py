"""``zoo serve`` tested with the official ``openai`` client, over loopback, against the real CLI.

One server process (``zoo serve`` started by the test on a free port, with an API key) serves the
embedded default model for the whole module. Answers are checked against mlx-lm computing the
same thing in this process (greedy, same prompt ids), streaming against non-streaming, and every
request of a parallel load against the same request made alone.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

import openai

ZOO = os.path.join(os.path.dirname(sys.executable), "zoo")  # the console script of this environment

MODEL = "hunyuan-tiny-instruct"  # the embedded default: A13B's tokenizer format, chat template and reply format
TOOL_PROMPT = "What time is it?"
TOOL_SCRIPT = '<tool_calls>[{"name": "get_time", "arguments": {}}]</tool_calls>'
KEY = "test-key-123"


def _start(args, env):
    proc = subprocess.Popen([ZOO, "serve", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        m = re.search(r"on http://([\d.]+):(\d+)/v1", line)
        if m:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep draining
            return proc, f"http://{m.group(1)}:{m.group(2)}/v1"
    proc.kill()
    raise AssertionError("zoo serve did not start:\n" + "".join(lines))


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve-home")
    return dict(os.environ, ZOO_CACHE_DIR=str(home / "zoo"), HF_HUB_OFFLINE="1", HF_HOME=str(home / "hf"))


@pytest.fixture(scope="module")
def tool_model(home, tmp_path_factory):
    """hunyuan-tiny-instruct with its head solved so that, asked TOOL_PROMPT, it calls a tool."""
    from zoo_hunyuan import tiny_instruct
    from zoo_hunyuan.scripted import script_head
    from zoo_registry.chat import render
    from zoo_registry.loading import load_tokenizer

    folder = tmp_path_factory.mktemp("tool-model") / "hunyuan-tiny-tools"
    tiny_instruct.generate(folder)
    tok = load_tokenizer(folder)
    prompt = render(tok, [{"role": "user", "content": TOOL_PROMPT}])
    eos = tok.convert_tokens_to_ids("<|eos|>")
    script_head(folder, prompt.ids, list(tok.encode(TOOL_SCRIPT, add_special_tokens=False)) + [eos])
    return str(folder)


@pytest.fixture(scope="module")
def server(home, tool_model):
    """``zoo serve MODEL`` as the README starts it (no key), on a free port, plus the tool-calling model."""
    proc, url = _start([MODEL, tool_model, "--max-loaded", "2", "--port", "0"], home)
    try:
        yield url, home
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def keyed(home):
    """A second server that requires an API key and accepts at most 64 KiB per request."""
    proc, url = _start([MODEL, "--port", "0", "--api-key", KEY, "--max-body-bytes", "65536"], home)
    try:
        yield url
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0], api_key="none", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def local(server):
    """The same model and tokenizer loaded in this process (for reference computations)."""
    old = os.environ.get("ZOO_CACHE_DIR")
    os.environ["ZOO_CACHE_DIR"] = server[1]["ZOO_CACHE_DIR"]
    try:
        from zoo_registry.chat import TextGenerator

        yield TextGenerator.load(MODEL)
    finally:
        if old is None:
            os.environ.pop("ZOO_CACHE_DIR", None)
        else:
            os.environ["ZOO_CACHE_DIR"] = old


def _mlx_lm_sampling(local) -> dict:
    """Greedy, with the checkpoint's other defaults (its repetition penalty), as mlx-lm's arguments."""
    sampling = local.sampling(temperature=0.0)
    return dict(sampler=sampling.sampler(), logits_processors=sampling.logits_processors())


def _raw(url, path, body: bytes, headers=None):
    req = urllib.request.Request(url.rsplit("/v1", 1)[0] + path, data=body, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _health(url):
    with urllib.request.urlopen(url.rsplit("/v1", 1)[0] + "/health", timeout=10) as r:
        return json.loads(r.read())


def test_models_lists_what_is_served(client, tool_model):
    assert [m.id for m in client.models.list()] == [MODEL, tool_model]


def test_reasoning_goes_to_reasoning_content_streaming_or_not(client):
    """The default model answers "Hello" as A13B does: <think>…</think><answer>…</answer>."""
    from zoo_hunyuan.tiny_instruct import DEMO_PROMPT, DEMO_REPLY

    reasoning = DEMO_REPLY.split("<think>\n")[1].split("\n</think>")[0]
    answer = DEMO_REPLY.split("<answer>\n")[1].split("\n</answer>")[0]
    args = dict(model=MODEL, messages=[{"role": "user", "content": DEMO_PROMPT}], max_tokens=64)
    whole = client.chat.completions.create(**args)
    message = whole.choices[0].message
    assert (message.content, message.reasoning_content) == (answer, reasoning)
    assert whole.choices[0].finish_reason == "stop"
    chunks = list(client.chat.completions.create(stream=True, **args))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.content or "" for d in deltas) == answer
    assert "".join(getattr(d, "reasoning_content", None) or "" for d in deltas) == reasoning
    assert len([d for d in deltas if d.content]) > 3  # streamed token by token, not in one piece
    assert not any("<" in (d.content or "") + (getattr(d, "reasoning_content", None) or "") for d in deltas)


def test_thinking_switch_reaches_the_template(client, local):
    messages = [{"role": "user", "content": "Hello"}]
    off = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=2,
                                         extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    assert off.usage.prompt_tokens == len(local.render(messages, enable_thinking=False).ids)
    assert off.usage.prompt_tokens > len(local.render(messages).ids)  # '<think>\n\n</think>\n' was appended


def test_tool_call_round_trip(client, tool_model, local):
    """A tool call comes back parsed as OpenAI tool_calls; the tool's result goes back through the template."""
    tools = [{"type": "function", "function": {"name": "get_time", "description": "the time now",
                                                "parameters": {"type": "object", "properties": {}}}}]
    first = [{"role": "user", "content": TOOL_PROMPT}]
    r = client.chat.completions.create(model=tool_model, messages=first, max_tokens=64)
    call = r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "tool_calls" and not r.choices[0].message.content
    assert [(c.type, c.function.name, json.loads(c.function.arguments)) for c in call] == [("function", "get_time", {})]
    chunks = list(client.chat.completions.create(model=tool_model, messages=first, max_tokens=64, stream=True))
    streamed = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [(tc.index, tc.function.name) for tc in streamed] == [(0, "get_time")]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    history = first + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": call[0].id, "type": "function", "function": {"name": "get_time", "arguments": call[0].function.arguments}}]},
        {"role": "tool", "tool_call_id": call[0].id, "content": "12:00"}]
    again = client.chat.completions.create(model=tool_model, messages=history, max_tokens=4)
    expected = local.render([dict(m, content=m["content"] or "") for m in history]).ids
    assert again.usage.prompt_tokens == len(expected)  # the tool result went through the chat template
    with_tools = client.chat.completions.create(model=tool_model, messages=history, tools=tools, max_tokens=4)
    assert with_tools.usage.prompt_tokens > again.usage.prompt_tokens  # the template's tool prompt was used


def test_chat_equals_mlx_lm_greedy_on_the_same_prompt(client, local):
    from mlx_lm import generate

    from zoo_registry.chat import split

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    r = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=12, temperature=0)
    prompt = local.render(messages)
    raw = generate(local.model, local.tokenizer, prompt.ids, max_tokens=12, **_mlx_lm_sampling(local))
    expected = split(raw, local.output_format, prompt.text)  # the model's output parser (tested on its own)
    assert r.choices[0].message.content == expected.text
    assert getattr(r.choices[0].message, "reasoning_content", None) == (expected.reasoning or None)
    assert r.usage.prompt_tokens == len(prompt.ids)
    assert 1 <= r.usage.completion_tokens <= 12
    assert r.choices[0].finish_reason == ("length" if r.usage.completion_tokens == 12 else "stop")  # follows the count
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"


def test_streaming_adds_up_to_the_same_answer(client):
    args = dict(model=MODEL, messages=[{"role": "user", "content": "Tell me a story"}], max_tokens=16, temperature=0.8, seed=7)
    whole = client.chat.completions.create(**args)
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **args))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [whole.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert all("<think>" not in (c.choices[0].delta.content or "") for c in chunks if c.choices)


def test_completions_stop_and_logprobs(client, local):
    from mlx_lm import generate

    r = client.completions.create(model=MODEL, prompt="The model", max_tokens=10, temperature=0, logprobs=2)
    expected = generate(local.model, local.tokenizer, local.tokenizer.encode("The model"), max_tokens=10, **_mlx_lm_sampling(local))
    assert r.choices[0].text == expected
    lp = r.choices[0].logprobs
    assert "".join(lp.tokens).lstrip() == expected.lstrip() and len(lp.token_logprobs) == len(lp.tokens)  # mlx-lm drops the first leading space
    assert len(lp.tokens) >= 4 and len(lp.top_logprobs) == len(lp.tokens)  # the all() below see every token
    assert all(v <= 0 for v in lp.token_logprobs)
    assert all(max(top.values()) >= lp.token_logprobs[i] - 1e-5 for i, top in enumerate(lp.top_logprobs))  # greedy: top-1
    assert len(expected) > 3, expected  # the stop-string check needs a few characters to cut at
    stop = expected[2:4]
    s = client.completions.create(model=MODEL, prompt="The model", max_tokens=10, temperature=0, stop=[stop])
    assert s.choices[0].text == expected[: expected.index(stop)] and s.choices[0].finish_reason == "stop"


def test_errors_are_openai_shaped(client, server):
    url = server[0]
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert e.value.body["code"] == "model_not_found" and MODEL in e.value.body["message"]
    status, body = _raw(url, "/v1/chat/completions", b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], temperature=5)
    assert e.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], extra_body={"temprature": 1})
    assert "temprature" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=[], max_tokens=2)
    assert e.value.body["param"] == "messages"


def test_api_key_and_body_limit(keyed):
    with pytest.raises(openai.AuthenticationError) as e:
        openai.OpenAI(base_url=keyed, api_key="wrong", max_retries=0).models.list()
    assert e.value.body["code"] == "invalid_api_key"
    assert [m.id for m in openai.OpenAI(base_url=keyed, api_key=KEY, max_retries=0).models.list()] == [MODEL]
    big = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x" * 70000}]}).encode()
    status, body = _raw(keyed, "/v1/chat/completions", big, {"Authorization": f"Bearer {KEY}"})
    assert status == 413 and body["error"]["code"] == "request_too_large"


def test_a_client_that_disconnects_stops_its_generation(client, server, local):
    before = _health(server[0])["jobs"]["cancelled"]
    never_stop = {str(i): -100 for i in local.tokenizer.eos_token_ids}  # only the client can end this one
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Go on forever"}],
                                            max_tokens=100000, temperature=1.0, seed=1, stream=True, logit_bias=never_stop)
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()
    deadline = time.monotonic() + 60
    while _health(server[0])["jobs"]["cancelled"] == before:
        assert time.monotonic() < deadline, "the generation went on after its client left"
        time.sleep(0.2)
    # and the server still answers
    assert client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2).choices


def test_prefix_of_a_conversation_is_reused(client):
    history = [{"role": "user", "content": "First question about the weather"}]
    first = client.chat.completions.create(model=MODEL, messages=history, max_tokens=8, temperature=0)
    history += [{"role": "assistant", "content": first.choices[0].message.content},
                {"role": "user", "content": "And a second one"}]
    second = client.chat.completions.create(model=MODEL, messages=history, max_tokens=8, temperature=0)
    assert second.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens - 1


def test_parallel_clients_get_what_they_would_get_alone(client):
    """8 clients x 4 requests at once: all answered, each equal to the same request made alone."""
    requests = [dict(model=MODEL, messages=[{"role": "user", "content": f"Request {c}-{k}: say something"}],
                     max_tokens=6, temperature=0.9, seed=100 * c + k) for c in range(8) for k in range(4)]
    answers = [None] * len(requests)

    def worker(c):
        for k in range(4):
            i = 4 * c + k
            answers[i] = client.chat.completions.create(**requests[i]).choices[0].message.content

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert all(a is not None for a in answers)
    for i in (0, 9, 18, 31):  # a sample, asked again one at a time
        alone = client.chat.completions.create(**requests[i]).choices[0].message.content
        assert alone == answers[i], f"request {i}"


def test_zoo_chat_through_a_pipe(server, local):
    """Two turns piped in; the first answer equals mlx-lm's greedy answer to the same prompt."""
    from mlx_lm import generate

    out = subprocess.run([ZOO, "chat", MODEL, "--temp", "0", "-m", "8"],
                         input="Hello\n/no_think\nHow are you\n/exit\n", capture_output=True, text=True,
                         env=server[1], timeout=300)
    assert out.returncode == 0, out.stderr
    from zoo_registry.chat import split

    prompt = local.render([{"role": "user", "content": "Hello"}])
    first = split(generate(local.model, local.tokenizer, prompt.ids, max_tokens=8, **_mlx_lm_sampling(local)),
                  local.output_format, prompt.text).text
    assert out.stdout.startswith(first + "\n")
    assert out.stdout.count("\n") >= 2 + first.count("\n")  # a second answer followed
    assert "(thinking off)" in out.stderr


def _readme_blocks():
    """The README's serve section: ``<!-- serve: NAME -->`` then a fenced block."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    return {m.group(1): m.group(2) for m in re.finditer(r"<!-- serve: (\w+) -->\n```\w*\n(.*?)\n```", text, re.S)}


def test_readme_serve_section_runs_as_written(server):
    """The README's command, Python snippet and curl line, with only the port changed."""
    import shlex

    blocks = _readme_blocks()
    assert set(blocks) == {"command", "python", "curl"}
    port = server[0].rsplit(":", 1)[1].split("/")[0]
    command = shlex.split(blocks["command"])
    assert command[:3] == ["zoo", "serve", MODEL] and "--port" in command  # what the fixture started
    out = subprocess.run([sys.executable, "-c", blocks["python"].replace(":8000/", f":{port}/")], capture_output=True,
                         text=True, timeout=300, env=server[1])
    assert out.returncode == 0 and out.stdout.strip(), out.stderr
    curl = blocks["curl"].replace(":8000/", f":{port}/").replace("\\\n", " ")
    out = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["role"] == "assistant"
