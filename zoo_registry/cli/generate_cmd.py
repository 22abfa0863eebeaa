"""``zoo generate NAME|PATH|REPO_ID --prompt TEXT``: stream text from a model, like mlx_lm.generate.

stdout gets the answer only, as it is produced: never reasoning, never tag text, so
``zoo generate ... > answer.txt`` or a pipe gets clean text. The model's reasoning (the
``<think>`` block of Hunyuan-A13B and other thinking models, split out by the output parser the
model's plugin registered) goes to stderr, dimmed, when stderr is a terminal;
``--show-thinking`` shows it on stderr even when it is not a terminal, ``--hide-thinking``
never. Tool calls print as ``tool call: NAME ARGUMENTS-JSON`` lines. ``--raw`` prints the
model's text untouched, tags included. ``--json`` prints one object at the end with ``text``,
``reasoning``, ``tool_calls``, ``raw`` and the settings used.

Sampling defaults come from the checkpoint's ``generation_config.json`` (temperature, top_p, top_k,
min_p, repetition_penalty, as transformers applies them: only with ``do_sample``), then zoo's
(greedy); any option given here wins. Before generating, one stderr line says which settings
apply and where each came from, and which ids stop generation (every ``eos_token_id`` listed).
``--think`` / ``--no-think`` switch the model's thinking (the chat template's
``enable_thinking``, or the ``/think`` prefixes the model card defines); without them the
template's default applies. The statistics mlx-lm prints after the text go to stderr;
``--quiet`` drops them and the settings line. ``--seed`` makes sampling reproducible.
"""

from __future__ import annotations

import json
import os
import sys

from ..errors import ConfigError
from .output import print_json
from .pipeline import add_load_args, hub_options, load

DEFAULT_MAX_TOKENS = 100  # mlx_lm.generate's default
DIM, RESET = "\x1b[2m", "\x1b[0m"


def add_generation_args(p, prompt_required: bool = True) -> None:
    g = p.add_argument_group("generation")
    g.add_argument("--prompt", "-p", required=prompt_required, help="the prompt ('-' reads it from stdin)")
    g.add_argument("--max-tokens", "-m", type=int, default=DEFAULT_MAX_TOKENS, help=f"most tokens to generate (default: {DEFAULT_MAX_TOKENS})")
    g.add_argument("--temp", type=float, help="sampling temperature; 0 is greedy (default: the checkpoint's generation_config.json, else 0)")
    g.add_argument("--top-p", type=float, help="nucleus sampling: keep the smallest set of tokens with this much probability (default: the checkpoint's, else 1, off)")
    g.add_argument("--top-k", type=int, help="sample among the k most likely tokens (default: the checkpoint's, else 0, off)")
    g.add_argument("--min-p", type=float, help="drop tokens less likely than min-p times the top token (default: the checkpoint's, else 0, off)")
    g.add_argument("--repetition-penalty", type=float, help="penalise tokens already generated, e.g. 1.1 (default: the checkpoint's, else off)")
    g.add_argument("--seed", type=int, help="seed MLX's random generator (reproducible sampling)")
    g.add_argument("--system", help="system message for the chat template")
    g.add_argument("--no-chat-template", dest="chat_template", action="store_false", help="send the prompt as is, without the chat template")
    think = g.add_mutually_exclusive_group()
    think.add_argument("--think", dest="enable_thinking", action="store_const", const=True, default=None,
                       help="let the model reason before answering (enable_thinking / '/think'); default: the chat template's default")
    think.add_argument("--no-think", dest="enable_thinking", action="store_const", const=False,
                       help="answer without reasoning (enable_thinking=false / '/no_think')")
    show = g.add_mutually_exclusive_group()
    show.add_argument("--show-thinking", dest="show_thinking", action="store_const", const=True, default=None,
                      help="print the reasoning on stderr even when stderr is not a terminal (default: only on a terminal, dimmed)")
    show.add_argument("--hide-thinking", dest="show_thinking", action="store_const", const=False, help="never print the reasoning")
    g.add_argument("--raw", action="store_true", help="print the model's text as generated, tags included (no reasoning split)")
    g.add_argument("--output-parser", metavar="NAME", help="split the output with this registered parser ('none': no parsing, 'think': the generic <think> splitter; default: the one the model's plugin registered)")
    # no -q: it means --quantize in every command, as in mlx_lm.convert (main.py reads an old `-q` as --quiet, with a warning)
    g.add_argument("--quiet", action="store_true", help="print only the generated text (no settings, reasoning or statistics)")


def add_parser(sub):
    p = sub.add_parser("generate", help="generate text from a model card, folder or repo id")
    add_load_args(p)
    add_generation_args(p, prompt_required=True)
    p.add_argument("--json", action="store_true", help="print the answer, reasoning, tool calls and statistics as one JSON object at the end")
    p.add_argument("--dry-run", action="store_true", help="show what loading would do (or download) and stop; generates nothing")
    p.set_defaults(run=run, explain=False)


def _check(args) -> None:
    if args.max_tokens == 0 or args.max_tokens < -1:
        raise ConfigError(f"--max-tokens must be a positive number (or -1 for no limit), got {args.max_tokens}")
    if args.temp is not None and args.temp < 0:
        raise ConfigError(f"--temp must be >= 0, got {args.temp}")
    if args.top_p is not None and not 0.0 < args.top_p <= 1.0:
        raise ConfigError(f"--top-p must be in (0, 1], got {args.top_p}")
    if (args.top_k is not None and args.top_k < 0) or (args.min_p is not None and not 0.0 <= args.min_p <= 1.0):
        raise ConfigError("--top-k must be >= 0 and --min-p in [0, 1]")
    if args.repetition_penalty is not None and args.repetition_penalty <= 0:
        raise ConfigError(f"--repetition-penalty must be > 0, got {args.repetition_penalty}")


class Printer:
    """Answer to stdout; reasoning, when shown, to ``reasoning_to`` (stderr by default), dimmed on a
    terminal; tool calls as ``tool call: NAME ARGUMENTS`` lines. ``zoo chat`` prints with it too."""

    def __init__(self, show_reasoning: bool, dim: bool, reasoning_to=None):
        self.show, self.dim = show_reasoning, dim
        self.reasoning_to = reasoning_to
        self.in_reasoning = False

    def __call__(self, event) -> None:
        if event.reasoning:
            if self.show:
                out = self.reasoning_to or sys.stderr
                out.write(f"{DIM}{event.reasoning}{RESET}" if self.dim else event.reasoning)
                out.flush()
                self.in_reasoning = True
            return
        self.end_reasoning()
        if event.text:
            sys.stdout.write(event.text)
        for call in event.tool_calls:
            sys.stdout.write(f"tool call: {call.name} {json.dumps(call.arguments, ensure_ascii=False)}\n")
        sys.stdout.flush()

    def end_reasoning(self) -> None:
        if self.in_reasoning:
            out = self.reasoning_to or sys.stderr
            out.write("\n\n")
            out.flush()
            self.in_reasoning = False


def _token_names(tokenizer, ids) -> dict:
    try:
        return dict(zip(ids, tokenizer.convert_ids_to_tokens(list(ids))))
    except Exception:  # noqa: BLE001 - names are decoration
        return {}


def generate_and_print(args, model, tokenizer, extra=None, info=None, registry=None) -> int:
    """Stream the generation for ``args.prompt``: answer to stdout, the rest to stderr (or JSON)."""
    import mlx.core as mx

    from ..chat import Result, TextGenerator
    from ..kernels.layers import describe as describe_kernels, report as kernel_report
    from ..runtime import blas

    _check(args)
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    prompt = prompt.replace("\\n", "\n").replace("\\t", "\t")  # as mlx_lm.generate does
    if args.seed is not None:
        mx.random.seed(args.seed)
    model_type = (info.raw_config.get("model_type") or info.architecture) if info is not None else None
    gen = TextGenerator(model, tokenizer, path=info.path if info is not None else None, model_type=model_type,
                        output_parser=getattr(args, "output_parser", None), registry=registry)
    sampling = gen.sampling(origin="command line", temperature=args.temp, top_p=args.top_p, top_k=args.top_k,
                            min_p=args.min_p, repetition_penalty=args.repetition_penalty)
    rendered = gen.render(prompt, system=args.system, enable_thinking=args.enable_thinking, chat_template=args.chat_template)
    chatty = not args.quiet and not args.json
    if chatty:
        print(f"zoo: {sampling.describe(_token_names(tokenizer, sampling.eos_token_ids))}", file=sys.stderr)
        parser = "off (--raw)" if args.raw else gen.output_parser
        print(f"zoo: thinking: {rendered.thinking}; output parser: {parser}", file=sys.stderr)
    tty = sys.stderr.isatty()
    show = args.show_thinking if args.show_thinking is not None else (tty and not args.quiet)
    printer = Printer(show_reasoning=bool(show) and not args.json, dim=tty and "NO_COLOR" not in os.environ)
    result = Result()
    for event in gen.stream(rendered, max_tokens=args.max_tokens, sampling=sampling, parse=not args.raw, result=result):
        if not args.json:
            printer(event)
    stats = result.stats
    if args.json:
        out = dict(extra or {})
        out.update(prompt=prompt, text=result.text, reasoning=result.reasoning,
                   tool_calls=[c.as_dict() for c in result.tool_calls], raw=result.raw, prompt_tokens=stats.prompt_tokens,
                   prompt_tps=stats.prompt_tps, generation_tokens=stats.generation_tokens, generation_tps=stats.generation_tps,
                   peak_memory_gb=stats.peak_memory_gb, finish_reason=stats.finish_reason, sampling=sampling.as_dict(),
                   thinking=rendered.thinking, output_parser=gen.output_parser, blas=blas.status().as_dict(),
                   kernels=kernel_report(gen.model))
        print_json(out)
        return 0
    printer.end_reasoning()
    sys.stdout.write("\n")
    sys.stdout.flush()
    if not args.quiet:
        print("=" * 10, file=sys.stderr)
        if not result.text and not result.tool_calls:
            if result.reasoning and not show:
                print(f"No answer: the model only reasoned ({len(result.reasoning)} characters, not shown; "
                      "--show-thinking shows it, a larger --max-tokens lets it finish)", file=sys.stderr)
            else:
                print("No text generated for this prompt", file=sys.stderr)
        for line in stats.lines():
            print(line, file=sys.stderr)
        print(blas.status().describe(), file=sys.stderr)
        print(f"CPU kernels: {describe_kernels(kernel_report(gen.model))}", file=sys.stderr)
    return 0


def run(args):
    """``zoo generate`` with the registry :func:`~.main.main` gives it (``args.registry``)."""
    _check(args)
    with hub_options(args):
        loaded = load(args, args.registry, tokenizer=True)
        if loaded.dry_run_status is not None:
            return loaded.dry_run_status
        return generate_and_print(args, loaded.model, loaded.tokenizer, info=loaded.info, registry=args.registry)
