"""``zoo generate NAME|PATH|REPO_ID --prompt TEXT``: stream text from a model, like mlx_lm.generate.

The text goes to stdout as it is produced; the statistics mlx-lm prints after it (prompt and
generation tokens-per-second, peak memory) go to stderr, so ``zoo generate ... > out.txt`` keeps
only the text. The prompt goes through the tokenizer's chat template when it has one
(``--no-chat-template`` sends it as is). ``--seed`` seeds MLX's generator, so sampled text is
reproducible; the default ``--temp 0`` is greedy and needs no seed.
"""

from __future__ import annotations

import sys

from ..errors import ConfigError
from .output import print_json

DEFAULT_MAX_TOKENS = 100  # mlx_lm.generate's default


def add_generation_args(p, prompt_required: bool = True) -> None:
    g = p.add_argument_group("generation")
    g.add_argument("--prompt", "-p", required=prompt_required, help="the prompt ('-' reads it from stdin)")
    g.add_argument("--max-tokens", "-m", type=int, default=DEFAULT_MAX_TOKENS, help=f"most tokens to generate (default: {DEFAULT_MAX_TOKENS})")
    g.add_argument("--temp", type=float, default=0.0, help="sampling temperature; 0 is greedy (default: 0)")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: keep the smallest set of tokens with this much probability (default: 1, off)")
    g.add_argument("--top-k", type=int, default=0, help="sample among the k most likely tokens (default: 0, off)")
    g.add_argument("--min-p", type=float, default=0.0, help="drop tokens less likely than min-p times the top token (default: 0, off)")
    g.add_argument("--repetition-penalty", type=float, help="penalise tokens already generated (e.g. 1.1)")
    g.add_argument("--seed", type=int, help="seed MLX's random generator (reproducible sampling)")
    g.add_argument("--system", help="system message for the chat template")
    g.add_argument("--no-chat-template", dest="chat_template", action="store_false", help="send the prompt as is, without the chat template")
    g.add_argument("--quiet", "-q", action="store_true", help="print only the generated text (no statistics)")


def add_parser(sub):
    from .load_cmd import add_load_args

    p = sub.add_parser("generate", help="generate text from a model card, folder or repo id")
    add_load_args(p)
    add_generation_args(p, prompt_required=True)
    p.add_argument("--json", action="store_true", help="print the text and statistics as one JSON object at the end")
    p.add_argument("--dry-run", action="store_true", help="show what loading would do (or download) and stop; generates nothing")
    p.set_defaults(run=run, explain=False)


def _check(args) -> None:
    if args.max_tokens == 0 or args.max_tokens < -1:
        raise ConfigError(f"--max-tokens must be a positive number (or -1 for no limit), got {args.max_tokens}")
    if args.temp < 0:
        raise ConfigError(f"--temp must be >= 0, got {args.temp}")
    if not 0.0 < args.top_p <= 1.0:
        raise ConfigError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.top_k < 0 or not 0.0 <= args.min_p <= 1.0:
        raise ConfigError("--top-k must be >= 0 and --min-p in [0, 1]")


def generate_and_print(args, model, tokenizer, extra=None) -> int:
    """Stream the generation for ``args.prompt`` to stdout; statistics to stderr (or JSON)."""
    import mlx.core as mx

    from ..generation import GenerationStats, build_prompt, stream
    from ..runtime import blas

    _check(args)
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    prompt = prompt.replace("\\n", "\n").replace("\\t", "\t")  # as mlx_lm.generate does
    if args.seed is not None:
        mx.random.seed(args.seed)
    ids = build_prompt(tokenizer, prompt, chat_template=args.chat_template, system=args.system)
    stats = GenerationStats()
    pieces = []
    live = not args.json
    for text in stream(model, tokenizer, ids, max_tokens=args.max_tokens, temp=args.temp, top_p=args.top_p, top_k=args.top_k,
                       min_p=args.min_p, repetition_penalty=args.repetition_penalty, stats=stats):
        pieces.append(text)
        if live:
            sys.stdout.write(text)
            sys.stdout.flush()
    text = "".join(pieces)
    if args.json:
        out = dict(extra or {})
        out.update(prompt=prompt, text=text, prompt_tokens=stats.prompt_tokens, prompt_tps=stats.prompt_tps,
                   generation_tokens=stats.generation_tokens, generation_tps=stats.generation_tps,
                   peak_memory_gb=stats.peak_memory_gb, finish_reason=stats.finish_reason,
                   blas=blas.status().as_dict())
        print_json(out)
        return 0
    sys.stdout.write("\n")
    sys.stdout.flush()
    if not args.quiet:
        print("=" * 10, file=sys.stderr)
        if not text:
            print("No text generated for this prompt", file=sys.stderr)
        for line in stats.lines():
            print(line, file=sys.stderr)
        print(blas.status().describe(), file=sys.stderr)
    return 0


def run(args):
    from .. import hub

    with hub.options(refresh=args.refresh, dry_run=args.dry_run, allow_pickle_weights=getattr(args, "allow_pickle_weights", None)):
        return _run(args)


def _run(args):
    from .. import distributed, loading
    from .load_cmd import dry_run, finish_loading, load_options, prepare_source, quiet_transformers

    _check(args)
    distributed.quiet_unless_primary()  # under mlx.launch only rank 0 prints
    quiet_transformers(args)
    card = prepare_source(args.model)
    if args.dry_run:
        return dry_run(args, card)
    model, tokenizer = loading.load(args.model, **load_options(args))
    distributed.shard_model(model, distributed.world())  # no-op in a single process
    finish_loading(model)
    return generate_and_print(args, model, tokenizer)
