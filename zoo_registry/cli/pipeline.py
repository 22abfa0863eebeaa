"""The loading pipeline the model commands share (``zoo load``, ``zoo generate``; ``zoo serve`` and
``zoo chat`` share its quiet-transformers step).

One pass, in order: quiet the ranks other than 0 under ``mlx.launch``; resolve a card name once
(validated, ``requires`` checked, a generated checkpoint built with a progress bar) so a card's
problems are reported first; stop at the plan for ``--dry-run``; otherwise load lazily through
:mod:`zoo_registry.loading` with the same registry and read the weights layer by layer with a
progress bar, or, under ``mlx.launch`` with more than one rank, through
:func:`zoo_registry.distributed.sharded_load`: shard, then read one tensor at a time. The registry is passed in by the command (the process-wide one at the CLI's
boundary); nothing here looks one up.

MLX is imported only inside the functions that load, so building the parser stays cheap.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Optional

from .output import print_json


def add_weight_args(p) -> None:
    """How the weights are read and prepared: shared by ``zoo load``/``generate``/``serve``/``chat``."""
    p.add_argument("--no-strict", dest="strict", action="store_false", help="load even if tensors are missing or left over (they are listed)")
    p.add_argument("--quantize", "-q", type=int, choices=(4, 8), metavar="BITS",
                   help="quantize the weights to 4 or 8 bits after loading (MLX affine; the MoE router stays unquantized)")
    p.add_argument("--group-size", type=int, default=64, choices=(32, 64, 128), help="group size for --quantize (default: 64)")
    p.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), help="cast floating-point weights to this dtype")
    p.add_argument("--check-finite", action="store_true",
                   help="read every weight once more and refuse NaN/inf, naming the file and tensor")
    p.add_argument("--allow-pickle-weights", action="store_true",
                   help="read PyTorch pickle weights (pytorch_model*.bin) with zoo's restricted reader, which admits tensor data only")


def add_load_args(p) -> None:
    """Options shared by ``zoo load`` and ``zoo generate``."""
    p.add_argument("model", metavar="NAME|PATH|REPO_ID", help="a model card name (`zoo list`), a checkpoint folder or a Hugging Face repo id")
    add_weight_args(p)
    p.add_argument("--refresh", action="store_true",
                   help="ask the Hugging Face Hub for the repo's files again even when the cache is complete")


def quiet_transformers(args) -> None:
    """Hide transformers' warnings about config keys it does not know (zoo validated them already).

    Loading a tokenizer makes transformers read config.json too, and it warns about every
    architecture it lacks (``hunyuan``) and every rope key it does not model. ``--debug`` or an
    explicit ``TRANSFORMERS_VERBOSITY`` keeps them.
    """
    if not getattr(args, "debug", False):
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def weight_options(args) -> dict:
    """The loader's keyword arguments for :func:`add_weight_args`' flags."""
    return dict(strict=args.strict, quantize=args.quantize, group_size=args.group_size, dtype=args.dtype,
                check_finite=getattr(args, "check_finite", False), allow_pickle_weights=getattr(args, "allow_pickle_weights", False))


def load_options(args) -> dict:
    """Loader options from the CLI. Loading is lazy; :func:`finish_loading` reads the weights."""
    return dict(weight_options(args), lazy=True)


def engine_options(args) -> dict:
    """What ``zoo serve`` and ``zoo chat`` give their engine's loader: the weight flags and the
    registry :func:`~.main.main` looked up."""
    return dict(weight_options(args), registry=args.registry)


@contextmanager
def hub_options(args):
    """The Hugging Face Hub settings of ``--refresh``, ``--dry-run`` and ``--allow-pickle-weights``."""
    from .. import hub

    with hub.options(refresh=args.refresh, dry_run=args.dry_run, allow_pickle_weights=getattr(args, "allow_pickle_weights", None)):
        yield


def prepare_source(name: str, registry):
    """Resolve a card name up front, once: validated, ``requires`` checked, weights built if generated.

    Returns the card, or ``None`` when ``name`` is a folder or a repo id. Doing this before
    loading reports a card's problems first, and draws the progress bar while a generated
    checkpoint is built (the loader then finds it in the cache).
    """
    from .. import cards

    card = None if os.path.exists(name) else cards.lookup(name, registry)
    if card is None:
        return None
    card.validate().check(registry)
    cards.materialize(card)
    return card


def finish_loading(model, info=None) -> None:
    """Read the (lazily mapped) weights layer by layer with a progress bar; add the time to ``info``."""
    from ..generation import evaluate_with_progress
    from ..loading.integrity import reading_weights

    with reading_weights(info.path if info is not None else "the checkpoint"):
        seconds = evaluate_with_progress(model)
    if info is not None:
        info.seconds += seconds


def dry_run(args, card, registry) -> int:
    """The loader's plan: resolve, validate and map the weights from safetensors headers only."""
    from .. import loading

    plan = loading.plan(args.model, registry=registry, allow_pickle_weights=getattr(args, "allow_pickle_weights", False))
    report = plan.report
    if args.json:
        details = {"download": plan.download.as_dict()} if plan.download is not None else plan.info.as_dict()
        print_json({"model": args.model, "card": card.summary() if card else None, "dry_run": True, **details})
    else:
        print(f"{args.model}: dry run (" + ("nothing downloaded)" if plan.download is not None else "no tensor data read)"))
        for line in plan.lines():
            print(line)
        if getattr(args, "explain", False) and report is not None:
            print("\nWhere each parameter would come from:")
            for line in report.explain():
                print(f"  {line}")
    return 0 if report is None or report.ok or not args.strict else 1


@dataclass
class Loaded:
    """What :func:`load` gives a command: the card (or ``None``), and the model, tokenizer and load
    info, or, for ``--dry-run``, only the exit status of the printed plan."""

    card: Any = None
    model: Any = None
    tokenizer: Any = None
    info: Any = None
    dry_run_status: Optional[int] = None


def load(args, registry, *, tokenizer: bool) -> Loaded:
    """Run the pipeline for ``args.model`` (call it inside :func:`hub_options`)."""
    from .. import distributed, loading

    distributed.quiet_unless_primary()  # under mlx.launch only rank 0 prints
    quiet_transformers(args)
    card = prepare_source(args.model, registry)
    if args.dry_run:
        return Loaded(card, dry_run_status=dry_run(args, card, registry))
    if card is None:
        loading.resolve_source(args.model, registry)  # a folder or repo that is not there fails now, before the slow imports
    import mlx_lm.models.base  # noqa: F401 - importing mlx-lm (and transformers) takes seconds; keep it out of the load time

    options = dict(load_options(args), return_info=True, registry=registry)
    group = distributed.world()
    if group is not None:
        if not getattr(args, "quiet", False) and not getattr(args, "json", False):
            print(f"zoo: {group.size()} ranks: each loads its share, one tensor at a time", file=sys.stderr)
        model, tok, info = load_sharded(args.model, group, options, tokenizer)
    elif tokenizer:
        model, tok, info = loading.load(args.model, **options)
        finish_loading(model, info)
    else:
        (model, info), tok = loading.load_model(args.model, **options), None
        finish_loading(model, info)
    return Loaded(card, model, tok, info)


def load_sharded(source, group, options: dict, tokenizer: bool):
    """Under ``mlx.launch``: :func:`zoo_registry.distributed.sharded_load` (or ``sharded_load_model``),
    the path ``tests/test_distributed_launch.py`` checks against one process: lazy load, shard, then
    read the parameters one tensor at a time (at most one full checkpoint tensor beside this rank's
    share), then a barrier. Returns ``(model, tokenizer or None, info)``."""
    import time

    from .. import distributed
    from ..loading.integrity import reading_weights

    start = time.perf_counter()
    with reading_weights(source):
        if tokenizer:
            model, tok, info = distributed.sharded_load(source, group, **options)
        else:
            (model, info), tok = distributed.sharded_load_model(source, group, **options), None
    info.seconds = time.perf_counter() - start
    return model, tok, info


def one_process(command: str) -> None:
    """``zoo serve`` and ``zoo chat`` hold one whole model in one process: under ``mlx.launch``
    with several ranks every rank would load the whole model and bind the same port, so refuse
    before loading anything."""
    from ..distributed import launched_size
    from ..errors import ConfigError

    n = launched_size()
    if n > 1:
        raise ConfigError(f"zoo {command} runs in one process, but mlx.launch started {n} ranks",
                          hint=f"run `zoo {command}` without mlx.launch; to split a model across machines use "
                               "`mlx.launch ... zoo generate` (see docs/distributed.md)")
