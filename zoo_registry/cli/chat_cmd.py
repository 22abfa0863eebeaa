"""``zoo chat MODEL``: a conversation in the terminal that keeps its history and its KV cache.

Each line you type is a user turn; the answer streams as it is written. Reasoning (the
``<think>`` block) is shown dimmed on a terminal; with piped input it is left out unless
``--show-thinking``, so ``printf 'hi\\nmore\\n' | zoo chat MODEL`` prints one answer per line of
input. Commands: ``/think`` and ``/no_think`` switch the model's thinking for the next turns,
``/reset`` forgets the conversation, ``/exit`` (or end of input) leaves.

Turns go through the same engine as ``zoo serve``: the conversation's KV cache is kept between
turns and only the new part of the prompt is computed.
"""

from __future__ import annotations

import sys

from ..errors import ConfigError
from .generate_cmd import Printer
from .pipeline import add_weight_args, engine_options, one_process, quiet_transformers

COMMANDS = {"/think": "think before answering", "/no_think": "answer without thinking",
            "/reset": "forget the conversation", "/exit": "leave (also Ctrl-D)"}


def add_parser(sub):
    p = sub.add_parser("chat", help="chat with a model in the terminal (keeps the conversation and its cache)")
    p.add_argument("model", metavar="NAME|PATH|REPO_ID", help="a model card name, a checkpoint folder or a repo id")
    p.add_argument("--system", help="system message")
    p.add_argument("--max-tokens", "-m", type=int, default=512, help="most tokens per answer (default: 512)")
    p.add_argument("--temp", type=float, help="sampling temperature (default: the checkpoint's generation_config.json)")
    p.add_argument("--top-p", type=float, help="nucleus sampling (default: the checkpoint's)")
    p.add_argument("--top-k", type=int, help="top-k sampling (default: the checkpoint's)")
    p.add_argument("--seed", type=int, help="seed for reproducible sampling")
    think = p.add_mutually_exclusive_group()
    think.add_argument("--think", dest="enable_thinking", action="store_const", const=True, default=None, help="start with thinking on")
    think.add_argument("--no-think", dest="enable_thinking", action="store_const", const=False, help="start with thinking off")
    p.add_argument("--show-thinking", action="store_true", help="print the reasoning even when output is not a terminal")
    add_weight_args(p)
    p.set_defaults(run=run)


def _turns(interactive: bool):
    while True:
        try:
            line = input(">>> ") if interactive else sys.stdin.readline()
        except EOFError:
            return
        if not interactive and line == "":
            return
        yield line.rstrip("\n")


def run(args):
    from ..serve.engine import Engine, Job

    if args.max_tokens < 1:
        raise ConfigError(f"--max-tokens must be positive, got {args.max_tokens}")
    one_process("chat")
    quiet_transformers(args)
    engine = Engine([args.model], load_options=engine_options(args))
    interactive = sys.stdin.isatty()
    color = sys.stdout.isatty()
    show_thinking = color or args.show_thinking
    if interactive:
        print(f"zoo chat: {args.model}. Commands: " + ", ".join(COMMANDS) + ".", file=sys.stderr)
    messages = [{"role": "system", "content": args.system}] if args.system else []
    thinking = args.enable_thinking
    sampling = {k: v for k, v in (("temperature", args.temp), ("top_p", args.top_p), ("top_k", args.top_k)) if v is not None}
    try:
        for line in _turns(interactive):
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit", "/bye"):
                break
            if text in ("/think", "/no_think"):
                thinking = text == "/think"
                print(f"(thinking {'on' if thinking else 'off'})", file=sys.stderr)
                continue
            if text == "/reset":
                messages = [{"role": "system", "content": args.system}] if args.system else []
                print("(conversation reset)", file=sys.stderr)
                continue
            if text.startswith("/") and text.split()[0] in ("/help", "/?"):
                for name, what in COMMANDS.items():
                    print(f"  {name:<10} {what}", file=sys.stderr)
                continue
            messages.append({"role": "user", "content": line})
            job = engine.submit(Job(messages=list(messages), enable_thinking=thinking, max_tokens=args.max_tokens,
                                    sampling=dict(sampling), seed=args.seed))
            answer = []
            printer = Printer(show_reasoning=show_thinking, dim=color, reasoning_to=sys.stdout)
            for event in job:
                if event.error is not None:
                    messages.pop()
                    raise event.error
                printer(event)
                answer.append(event.text)
            printer.end_reasoning()
            sys.stdout.write("\n")
            sys.stdout.flush()
            messages.append({"role": "assistant", "content": "".join(answer)})
    finally:
        engine.close()
    return 0
