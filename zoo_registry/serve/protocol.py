"""The OpenAI API's request and response shapes, checked by hand so every error names its field.

Requests are validated here (not by the web framework) so that a bad request gets OpenAI's error
JSON — ``{"error": {"message", "type", "param", "code"}}`` with status 400 — naming the parameter,
as OpenAI does, instead of a framework-specific 422. Unknown parameters are refused
("Unrecognized request argument supplied"), as OpenAI refuses them: a typo is an error, not a drop.
Parameters clients commonly send that do not change the output (``user``, ``store``,
``metadata``, ...) are accepted and ignored; parameters zoo cannot honour (``n`` > 1,
``response_format`` other than text, ``audio``) are refused with a message saying so.

Responses follow OpenAI's Chat Completions and (legacy) Completions objects. Reasoning goes to
``reasoning_content`` — the field DeepSeek's API, vLLM and llama.cpp's server use — never to
``content``; tool calls to ``tool_calls`` with ``finish_reason: "tool_calls"``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from .engine import Job

MAX_STOP = 4  # as OpenAI
MAX_TOP_LOGPROBS = 20
DEFAULT_MAX_TOKENS = 512  # for chat completions that set no limit


class APIError(Exception):
    """An error for the client, in OpenAI's shape."""

    def __init__(self, message: str, *, status: int = 400, type: str = "invalid_request_error",
                 param: Optional[str] = None, code: Optional[str] = None):
        super().__init__(message)
        self.message, self.status, self.type, self.param, self.code = message, status, type, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


_COMMON = {"model", "max_tokens", "temperature", "top_p", "n", "stream", "stream_options", "stop", "seed",
           "presence_penalty", "frequency_penalty", "logit_bias", "user", "logprobs",
           # extensions vLLM, llama.cpp and mlx-lm's server accept
           "top_k", "min_p", "repetition_penalty"}
_IGNORED = {"user", "store", "metadata", "service_tier", "parallel_tool_calls", "prompt_cache_key", "safety_identifier"}
CHAT_PARAMS = _COMMON | _IGNORED | {"messages", "max_completion_tokens", "top_logprobs", "tools", "tool_choice",
                                    "response_format", "chat_template_kwargs", "reasoning_effort", "modalities"}
COMPLETION_PARAMS = _COMMON | _IGNORED | {"prompt", "echo", "suffix", "best_of"}
ROLES = ("system", "developer", "user", "assistant", "tool")


def _check_keys(body: dict, allowed: set) -> None:
    for key in body:
        if key not in allowed:
            raise APIError(f"Unrecognized request argument supplied: {key}", param=key)


def _number(body, key, lo=None, hi=None, integer=False, default=None):
    value = body.get(key, default)
    if value is None:
        return default
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if not ok or isinstance(value, bool):
        raise APIError(f"'{key}' must be {'an integer' if integer else 'a number'}, got {json.dumps(value)}", param=key)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"between {lo} and {hi}" if lo is not None and hi is not None else (f">= {lo}" if lo is not None else f"<= {hi}")
        raise APIError(f"'{key}' must be {rng}, got {value}", param=key)
    return value


def _stop(body) -> List[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise APIError("'stop' must be a string or a list of strings", param="stop")
    if len(stops) > MAX_STOP:
        raise APIError(f"'stop' takes at most {MAX_STOP} sequences, got {len(stops)}", param="stop")
    return [s for s in stops if s]


def _sampling(body) -> Dict[str, Any]:
    out = {
        "temperature": _number(body, "temperature", 0, 2),
        "top_p": _number(body, "top_p", 0, 1),
        "top_k": _number(body, "top_k", 0, integer=True),
        "min_p": _number(body, "min_p", 0, 1),
        "repetition_penalty": _number(body, "repetition_penalty", 0),
    }
    if out["top_p"] == 0:
        raise APIError("'top_p' must be > 0", param="top_p")
    return {k: v for k, v in out.items() if v is not None}


def _processors(body) -> Dict[str, Any]:
    out = {"presence_penalty": _number(body, "presence_penalty", -2, 2),
           "frequency_penalty": _number(body, "frequency_penalty", -2, 2)}
    bias = body.get("logit_bias")
    if bias is not None:
        if not isinstance(bias, dict):
            raise APIError("'logit_bias' must map token ids to numbers", param="logit_bias")
        try:
            out["logit_bias"] = {int(k): float(v) for k, v in bias.items()}
        except (TypeError, ValueError):
            raise APIError("'logit_bias' must map token ids (integers) to numbers in [-100, 100]", param="logit_bias") from None
    return {k: v for k, v in out.items() if v}


def _common(body: dict, job: Job) -> None:
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise APIError("'model' must be a string", param="model")
    job.model = model
    if _number(body, "n", 1, integer=True, default=1) != 1:
        raise APIError("zoo serve generates one choice per request: 'n' must be 1", param="n")
    if not isinstance(body.get("stream", False), bool):
        raise APIError("'stream' must be a boolean", param="stream")
    options = body.get("stream_options")
    if options is not None and (not isinstance(options, dict) or set(options) - {"include_usage", "include_obfuscation"}):
        raise APIError("'stream_options' must be an object with 'include_usage'", param="stream_options")
    job.sampling = _sampling(body)
    job.processors = _processors(body)
    job.seed = _number(body, "seed", integer=True)
    job.stop = _stop(body)


def _content(message: dict, i: int) -> Optional[str]:
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: text only
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise APIError(f"messages[{i}].content: only text parts are supported, got {kind!r}",
                               param=f"messages[{i}].content")
            texts.append(part["text"])
        return "".join(texts)
    raise APIError(f"messages[{i}].content must be a string or a list of text parts", param=f"messages[{i}].content")


def _messages(body: dict) -> List[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise APIError("'messages' must be a non-empty list", param="messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise APIError(f"messages[{i}].role must be one of {', '.join(ROLES)}", param=f"messages[{i}].role")
        role = "system" if m["role"] == "developer" else m["role"]
        message = {"role": role, "content": _content(m, i) or ""}
        if role == "assistant" and m.get("tool_calls"):
            calls = m["tool_calls"]
            if not isinstance(calls, list) or not all(isinstance(c, dict) and isinstance(c.get("function"), dict) for c in calls):
                raise APIError(f"messages[{i}].tool_calls must be a list of {{'function': {{'name', 'arguments'}}}}",
                               param=f"messages[{i}].tool_calls")
            message["tool_calls"] = [{"type": "function", "id": c.get("id"), "function": {
                "name": c["function"].get("name"), "arguments": c["function"].get("arguments", "{}")}} for c in calls]
        if role == "tool":
            if m.get("tool_call_id") is not None:
                message["tool_call_id"] = m["tool_call_id"]
            if m.get("name") is not None:
                message["name"] = m["name"]
        out.append(message)
    return out


def _tools(body: dict) -> Optional[list]:
    tools, choice = body.get("tools"), body.get("tool_choice", "auto")
    if tools is None:
        if choice not in (None, "none", "auto"):
            raise APIError("'tool_choice' needs 'tools'", param="tool_choice")
        return None
    if not isinstance(tools, list) or not all(isinstance(t, dict) and t.get("type") == "function"
                                              and isinstance(t.get("function"), dict) and t["function"].get("name")
                                              for t in tools):
        raise APIError("'tools' must be a list of {'type': 'function', 'function': {'name', 'description', 'parameters'}}",
                       param="tools")
    if choice == "none":
        return None
    if choice not in ("auto", "required") and not (isinstance(choice, dict) and choice.get("type") == "function"):
        raise APIError("'tool_choice' must be 'none', 'auto', 'required' or {'type': 'function', 'function': {'name'}}",
                       param="tool_choice")
    if isinstance(choice, dict):  # a named function: offer only that one
        name = (choice.get("function") or {}).get("name")
        tools = [t for t in tools if t["function"]["name"] == name]
        if not tools:
            raise APIError(f"'tool_choice' names {name!r}, which is not in 'tools'", param="tool_choice")
    return [t["function"] for t in tools]


def chat_job(body: Any) -> Job:
    """A :class:`Job` from a ``/v1/chat/completions`` body, or :class:`APIError`."""
    if not isinstance(body, dict):
        raise APIError("the request body must be a JSON object")
    _check_keys(body, CHAT_PARAMS)
    job = Job()
    _common(body, job)
    job.messages = _messages(body)
    job.tools = _tools(body)
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    job.max_tokens = _number({"max_tokens": limit}, "max_tokens", 1, integer=True, default=DEFAULT_MAX_TOKENS)
    fmt = body.get("response_format")
    if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") != "text"):
        raise APIError("zoo serve supports only response_format {'type': 'text'}", param="response_format")
    if body.get("modalities") not in (None, ["text"]):
        raise APIError("zoo serve produces text only", param="modalities")
    kwargs = body.get("chat_template_kwargs") or {}
    if not isinstance(kwargs, dict) or set(kwargs) - {"enable_thinking"}:
        raise APIError("'chat_template_kwargs' supports only 'enable_thinking'", param="chat_template_kwargs")
    if "enable_thinking" in kwargs:
        if not isinstance(kwargs["enable_thinking"], bool):
            raise APIError("'chat_template_kwargs.enable_thinking' must be a boolean", param="chat_template_kwargs")
        job.enable_thinking = kwargs["enable_thinking"]
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in ("none", "minimal", "low", "medium", "high"):
            raise APIError("'reasoning_effort' must be none, minimal, low, medium or high", param="reasoning_effort")
        if job.enable_thinking is None:
            job.enable_thinking = effort not in ("none", "minimal")
    if body.get("logprobs"):
        job.logprobs = _number(body, "top_logprobs", 0, MAX_TOP_LOGPROBS, integer=True, default=0)
    elif body.get("top_logprobs") is not None:
        raise APIError("'top_logprobs' needs 'logprobs': true", param="top_logprobs")
    return job



def completion_job(body: Any) -> Job:
    """A :class:`Job` from a ``/v1/completions`` body (no chat template, no output parsing)."""
    if not isinstance(body, dict):
        raise APIError("the request body must be a JSON object")
    _check_keys(body, COMPLETION_PARAMS)
    job = Job(parse=False)
    _common(body, job)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in prompt):
        job.prompt = list(prompt)
    elif isinstance(prompt, str) and prompt:
        job.prompt = prompt
    else:
        raise APIError("'prompt' must be a non-empty string (or one list of token ids); batches are not supported",
                       param="prompt")
    job.max_tokens = _number(body, "max_tokens", 1, integer=True, default=16)  # OpenAI's default for completions
    for key in ("echo", "suffix"):
        if body.get(key):
            raise APIError(f"zoo serve does not support '{key}'", param=key)
    if _number(body, "best_of", 1, integer=True, default=1) != 1:
        raise APIError("'best_of' must be 1", param="best_of")
    job.logprobs = _number(body, "logprobs", 0, 5, integer=True)  # Completions: an integer, at most 5
    return job


# -- responses ---------------------------------------------------------------------------------
@dataclass
class Reply:
    """What a finished job produced, accumulated from its events."""

    text: str = ""
    reasoning: str = ""
    tool_calls: tuple = ()
    logprobs: list = None
    finish_reason: Optional[str] = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    def add(self, event) -> None:
        self.text += event.text
        self.reasoning += event.reasoning
        self.tool_calls += tuple(event.tool_calls)
        if event.logprobs:
            self.logprobs = (self.logprobs or []) + list(event.logprobs)
        if event.final:
            self.finish_reason = event.finish_reason
            self.prompt_tokens, self.completion_tokens = event.prompt_tokens, event.completion_tokens
            self.cached_tokens = event.cached_tokens


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(reply: Reply) -> dict:
    return {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens}}


def tool_calls_json(calls, start: int = 0) -> List[dict]:
    out = []
    for i, call in enumerate(calls, start):
        args = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments, ensure_ascii=False)
        out.append({"index": i, "id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                    "function": {"name": call.name, "arguments": args}})
    return out


def chat_logprobs(entries, decode) -> Optional[dict]:
    if entries is None:
        return None
    return {"content": [{"token": decode(e["token"]), "logprob": e["logprob"], "bytes": list(decode(e["token"]).encode()),
                         "top_logprobs": [{"token": decode(t), "logprob": lp, "bytes": list(decode(t).encode())}
                                          for t, lp in e["top"]]} for e in entries]}


def chat_response(reply: Reply, model: str, decode, created: Optional[int] = None) -> dict:
    message: Dict[str, Any] = {"role": "assistant", "content": reply.text if (reply.text or not reply.tool_calls) else None}
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in tool_calls_json(reply.tool_calls)]
    return {"id": new_id("chatcmpl"), "object": "chat.completion", "created": created or int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": chat_logprobs(reply.logprobs, decode),
                         "finish_reason": finish_reason(reply.finish_reason)}],
            "usage": usage(reply)}


def chat_chunk(cid: str, model: str, created: int, delta: dict, finish=None, logprobs=None) -> dict:
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason(finish)}]}


def completion_chunk(cid: str, model: str, created: int, text: str, finish=None, logprobs=None) -> dict:
    return {"id": cid, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish_reason(finish)}]}


def usage_chunk(obj: str, cid: str, model: str, created: int, reply: Reply) -> dict:
    """The last chunk of a stream with ``stream_options.include_usage``: no choices, the counts."""
    return {"id": cid, "object": obj, "created": created, "model": model, "choices": [], "usage": usage(reply)}


def completion_logprobs(entries, decode) -> Optional[dict]:
    if entries is None:
        return None
    tokens = [decode(e["token"]) for e in entries]
    offsets, at = [], 0
    for t in tokens:
        offsets.append(at)
        at += len(t)
    return {"tokens": tokens, "token_logprobs": [e["logprob"] for e in entries],
            "top_logprobs": [{decode(t): lp for t, lp in e["top"]} for e in entries], "text_offset": offsets}


def completion_response(reply: Reply, model: str, decode) -> dict:
    return {"id": new_id("cmpl"), "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "text": reply.text, "logprobs": completion_logprobs(reply.logprobs, decode),
                         "finish_reason": finish_reason(reply.finish_reason)}],
            "usage": usage(reply)}


def finish_reason(reason: Optional[str]) -> Optional[str]:
    """OpenAI's finish reason for the engine's: a job cancelled by its client ended like a stop."""
    return "stop" if reason == "cancelled" else reason


def sse(data) -> bytes:
    """One server-sent event: ``data: <json>`` (or ``[DONE]``) and a blank line."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()
