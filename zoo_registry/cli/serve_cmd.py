"""``zoo serve [MODEL ...]``: an OpenAI-compatible HTTP server (see :mod:`zoo_registry.serve`).

Routes: ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions`` (streaming with
server-sent events, or not), ``GET /health``. The first model is loaded at start-up; the others
when a request names them (one model in memory at a time). Binds to 127.0.0.1 unless ``--host``
says otherwise; ``--api-key`` (or ``ZOO_API_KEY``) requires a bearer token.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import warnings

from ..errors import ConfigError, ZooWarning
from .pipeline import add_weight_args, engine_options, one_process, quiet_transformers

DEFAULT_MODEL = "hunyuan-tiny-instruct"


def add_parser(sub):
    p = sub.add_parser("serve", help="serve models over the OpenAI API (chat and completions, streaming)")
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help=f"card names, folders or repo ids to serve; clients name them in 'model' (default: {DEFAULT_MODEL})")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.add_argument("--api-key", default=os.environ.get("ZOO_API_KEY"),
                   help="require 'Authorization: Bearer KEY' (default: $ZOO_API_KEY, else no key)")
    p.add_argument("--max-body-bytes", type=int, default=4 * 1024 * 1024, help="largest request body accepted (default: 4 MiB)")
    p.add_argument("--no-prompt-cache", dest="prompt_cache", action="store_false",
                   help="do not reuse the KV cache of the previous request's common prompt prefix")
    p.add_argument("--max-loaded", type=int, default=1, metavar="N",
                   help="keep up to N models in memory (default: 1; a request for another model unloads the least recently used)")
    add_weight_args(p)
    p.set_defaults(run=run)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args):
    import uvicorn

    from ..serve.app import create_app
    from ..serve.engine import Engine

    if args.max_body_bytes < 1024:
        raise ConfigError(f"--max-body-bytes must be at least 1024, got {args.max_body_bytes}")
    if not _loopback(args.host) and not args.api_key:
        warnings.warn(f"serving on {args.host} without --api-key: anyone who can reach this address can use the model",
                      ZooWarning, stacklevel=1)
    one_process("serve")
    quiet_transformers(args)
    models = args.models or [DEFAULT_MODEL]
    print(f"zoo serve: loading {models[0]}", file=sys.stderr)
    engine = Engine(models, load_options=engine_options(args), prompt_cache=args.prompt_cache, max_loaded=args.max_loaded)
    app = create_app(engine, api_key=args.api_key, max_body=args.max_body_bytes)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)

    async def announce():
        while not server.started:
            import asyncio

            await asyncio.sleep(0.05)
        for s in server.servers:
            for sock in s.sockets:
                host, port = sock.getsockname()[:2]
                print(f"zoo serve: {', '.join(models)} on http://{host}:{port}/v1 (Ctrl-C stops)", file=sys.stderr, flush=True)

    import asyncio

    async def main():
        task = asyncio.create_task(announce())
        await server.serve()
        task.cancel()

    try:
        asyncio.run(main())
    finally:
        engine.close()
    return 0
