"""The ASGI application: OpenAI's routes over an :class:`~.engine.Engine`.

Built on FastAPI (Starlette underneath) and served by uvicorn, the stack vLLM and
llama-cpp-python's server use: a maintained HTTP/1.1 implementation, server-sent events that notice
a client going away, and graceful shutdown, none of which a server should hand-roll. Request bodies
are validated by :mod:`.protocol`, not by FastAPI's models, so errors keep OpenAI's shape.

Security defaults: ``zoo serve`` binds to 127.0.0.1; ``api_key`` (``--api-key`` or
``ZOO_API_KEY``) requires ``Authorization: Bearer <key>`` on every ``/v1`` route; a body larger
than ``max_body`` bytes is refused with 413 before it is read whole.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import HTTPException
from fastapi.responses import JSONResponse, StreamingResponse

from ..errors import UnknownNameError, ZooError
from . import protocol
from .engine import Engine, Job
from .protocol import APIError, Reply

MAX_BODY = 4 * 1024 * 1024


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes (by Content-Length, and as they stream)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await _send_error(send, self._error())
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _send_error(send, self._error())

    def _error(self) -> APIError:
        return APIError(f"the request body is larger than {self.limit} bytes (zoo serve --max-body-bytes)",
                        status=413, code="request_too_large")


class _TooLarge(Exception):
    pass


async def _send_error(send, error: APIError) -> None:
    body = json.dumps(error.body()).encode()
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(engine: Engine, *, api_key: Optional[str] = None, max_body: int = MAX_BODY):
    """The ASGI app serving ``engine``'s models."""
    app = FastAPI(title="zoo serve", docs_url=None, redoc_url=None, openapi_url=None)
    started = int(time.time())

    def error_response(e: APIError):
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(APIError)
    async def _api_error(request, e: APIError):
        return error_response(e)

    @app.exception_handler(HTTPException)
    async def _http_error(request, e: HTTPException):
        kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
        return error_response(APIError(str(e.detail), status=e.status_code, type=kind))

    @app.exception_handler(Exception)
    async def _internal(request, e: Exception):
        return error_response(APIError(f"internal error: {type(e).__name__}: {e}", status=500, type="server_error"))

    @app.middleware("http")
    async def _auth(request: Request, call_next):
        if api_key and request.url.path.startswith("/v1"):
            given = request.headers.get("authorization", "")
            token = given[7:] if given.lower().startswith("bearer ") else ""
            if not hmac.compare_digest(token.encode(), api_key.encode()):
                return error_response(APIError("invalid or missing API key (send 'Authorization: Bearer <key>')",
                                               status=401, code="invalid_api_key"))
        return await call_next(request)

    async def read_json(request: Request):
        raw = await request.body()
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise APIError(f"the request body is not valid JSON: {e}") from None

    def model_of(job: Job) -> str:
        try:
            return engine.resolve_model(job.model)
        except UnknownNameError as e:
            raise APIError(str(e).strip("'\""), status=404, param="model", code="model_not_found") from None

    @app.get("/health")
    async def health():
        return {"status": "ok", "queued": engine.queued(), "jobs": dict(engine.counts),
                "loaded": engine.loaded_names()}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": m, "object": "model", "created": started, "owned_by": "zoo"}
                                           for m in engine.models]}

    @app.get("/v1/models/{name:path}")
    async def model(name: str):
        if name not in engine.models:
            raise APIError(f"model {name!r} is not served here", status=404, param="model", code="model_not_found")
        return {"id": name, "object": "model", "created": started, "owned_by": "zoo"}

    async def run(job: Job, request: Request):
        """Submit ``job`` and yield its events as they come, cancelling it if the client leaves."""
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        job.on_event = lambda: loop.call_soon_threadsafe(ready.set)
        engine.submit(job)
        try:
            while True:
                while job.events.empty():
                    ready.clear()
                    if job.events.empty():
                        try:
                            await asyncio.wait_for(ready.wait(), timeout=1.0)
                        except asyncio.TimeoutError:
                            if await request.is_disconnected():
                                job.cancel()
                event = job.events.get_nowait()
                yield event
                if event.final:
                    return
        finally:
            job.cancel()  # a no-op when the job is done; stops generation when the client went away

    def failure(event) -> APIError:
        e = event.error
        if isinstance(e, ZooError):
            return APIError(str(e), status=400)
        return APIError(f"generation failed: {type(e).__name__}: {e}", status=500, type="server_error")

    def decoder(name: str):
        tokenizer = engine.tokenizer(name)
        return (lambda t: tokenizer.decode([t])) if tokenizer is not None else str

    async def answer(request: Request, make_job, respond, stream):
        """Validate the body, then a whole response (``respond``) or server-sent events (``stream``)."""
        body = await read_json(request)
        job = make_job(body)
        name = model_of(job)
        if not body.get("stream"):
            reply = Reply()
            async for event in run(job, request):
                if event.error is not None:
                    raise failure(event)
                reply.add(event)
            return respond(reply, name, decoder(name))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(stream(job, request, name, include_usage), media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await answer(request, protocol.chat_job, protocol.chat_response, chat_stream)

    async def chat_stream(job: Job, request: Request, name: str, include_usage: bool):
        cid, created = protocol.new_id("chatcmpl"), int(time.time())
        reply, calls = Reply(), 0
        yield protocol.sse(protocol.chat_chunk(cid, name, created, {"role": "assistant", "content": ""}))
        async for event in run(job, request):
            if event.error is not None:
                yield protocol.sse(failure(event).body())
                break
            reply.add(event)
            delta = {}
            if event.reasoning:
                delta["reasoning_content"] = event.reasoning
            if event.text:
                delta["content"] = event.text
            if event.tool_calls:
                delta["tool_calls"] = protocol.tool_calls_json(event.tool_calls, start=calls)
                calls += len(event.tool_calls)
            logprobs = protocol.chat_logprobs(event.logprobs, decoder(name)) if event.logprobs else None
            if delta or logprobs:
                yield protocol.sse(protocol.chat_chunk(cid, name, created, delta, logprobs=logprobs))
            if event.final:
                yield protocol.sse(protocol.chat_chunk(cid, name, created, {}, finish=event.finish_reason))
        if include_usage:
            yield protocol.sse(protocol.usage_chunk("chat.completion.chunk", cid, name, created, reply))
        yield protocol.sse("[DONE]")

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await answer(request, protocol.completion_job, protocol.completion_response, completion_stream)

    async def completion_stream(job: Job, request: Request, name: str, include_usage: bool):
        cid, created = protocol.new_id("cmpl"), int(time.time())
        reply = Reply()
        async for event in run(job, request):
            if event.error is not None:
                yield protocol.sse(failure(event).body())
                break
            reply.add(event)
            if event.text or event.final:
                logprobs = protocol.completion_logprobs(event.logprobs, decoder(name)) if event.logprobs else None
                yield protocol.sse(protocol.completion_chunk(cid, name, created, event.text, finish=event.finish_reason,
                                                             logprobs=logprobs))
        if include_usage:
            yield protocol.sse(protocol.usage_chunk("text_completion", cid, name, created, reply))
        yield protocol.sse("[DONE]")

    return BodyLimit(app, max_body)
