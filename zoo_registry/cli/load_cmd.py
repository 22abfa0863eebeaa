"""``zoo load NAME|PATH|REPO_ID``: resolve, validate and load a model, then say what was loaded.

The summary gives the architecture and the plugin serving it, parameters (total, and active per
token for mixture-of-experts models), dtype, memory, load time, KV-cache bytes per token and the
load report when anything was off. ``--json`` prints the same as one JSON object. With
``--prompt`` it goes on to generate, as ``zoo generate`` does.

MLX is imported only inside :func:`run`, so building the parser stays cheap.
"""

from __future__ import annotations

import os
import sys

from .output import print_json


def add_load_args(p) -> None:
    """Options shared by ``zoo load`` and ``zoo generate``."""
    p.add_argument("model", metavar="NAME|PATH|REPO_ID", help="a model card name (`zoo list`), a checkpoint folder or a Hugging Face repo id")
    p.add_argument("--no-strict", dest="strict", action="store_false", help="load even if tensors are missing or left over (they are listed)")
    p.add_argument("--quantize", type=int, choices=(4, 8), help="quantize the weights after loading (MLX affine; the MoE router stays unquantized)")
    p.add_argument("--group-size", type=int, default=64, choices=(32, 64, 128), help="group size for --quantize (default: 64)")
    p.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), help="cast floating-point weights to this dtype")
    p.add_argument("--check-finite", action="store_true",
                   help="read every weight once more and refuse NaN/inf, naming the file and tensor")
    p.add_argument("--refresh", action="store_true",
                   help="ask the Hugging Face Hub for the repo's files again even when the cache is complete")
    p.add_argument("--allow-pickle-weights", action="store_true",
                   help="read PyTorch pickle weights (pytorch_model*.bin) with zoo's restricted reader, which admits tensor data only")


def add_parser(sub):
    p = sub.add_parser("load", help="load a model and show its architecture, size, memory and load report")
    add_load_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--explain", action="store_true", help="show the full load report: which rule produced each parameter")
    p.add_argument("--dry-run", action="store_true", help="resolve and validate the card, config and checkpoint without building "
                   "the model; for a Hugging Face repo not yet cached, list the files and bytes it would download")
    from .generate_cmd import add_generation_args

    add_generation_args(p, prompt_required=False)
    p.set_defaults(run=run)


# -- helpers shared with generate_cmd ---------------------------------------------------------------
def prepare_source(name: str):
    """Resolve a card name up front (validated, ``requires`` checked, weights built if generated).

    Returns the card, or ``None`` when ``name`` is a folder or a repo id. Doing this before
    loading reports a card's problems first, and draws the progress bar while a generated
    checkpoint is built (the loader then finds it in the cache).
    """
    from .. import cards

    if os.path.exists(name) or cards.lookup(name) is None:
        return None
    card = cards.resolve(name)
    cards.materialize(card)
    return card


def quiet_transformers(args) -> None:
    """Hide transformers' warnings about config keys it does not know (zoo validated them already).

    Loading a tokenizer makes transformers read config.json too, and it warns about every
    architecture it lacks (``hunyuan``) and every rope key it does not model. ``--debug`` or an
    explicit ``TRANSFORMERS_VERBOSITY`` keeps them.
    """
    if not getattr(args, "debug", False):
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def load_options(args) -> dict:
    """Loader options from the CLI. Loading is lazy; :func:`finish_loading` reads the weights."""
    return dict(strict=args.strict, quantize=args.quantize, group_size=args.group_size, dtype=args.dtype, lazy=True,
                check_finite=getattr(args, "check_finite", False), allow_pickle_weights=getattr(args, "allow_pickle_weights", False))


def finish_loading(model, info=None) -> None:
    """Read the (lazily mapped) weights layer by layer with a progress bar; add the time to ``info``."""
    from ..generation import evaluate_with_progress

    from ..errors import CheckpointError

    try:
        seconds = evaluate_with_progress(model)
    except (RuntimeError, ValueError, OSError) as e:  # MLX reading a damaged or changed weight file
        where = info.path if info is not None else "the checkpoint"
        raise CheckpointError(f"{where}: reading the weights failed: {e}",
                              hint="a weight file is damaged or changed while loading; download or convert it again") from None
    if info is not None:
        info.seconds += seconds


def summary(args, model, info, card) -> dict:
    """Everything `zoo load` reports, as a JSON-ready dict."""
    import mlx.core as mx

    from ..generation import model_stats
    from ..registry import get_registry
    from ..kernels.layers import report as kernel_report
    from ..runtime import blas

    stats = model_stats(model, info.config)
    moe = stats.active_parameters != stats.parameters
    try:
        provider_version = get_registry().architecture(info.architecture).provider_version
    except KeyError:
        provider_version = None
    report = info.report
    return {
        "model": args.model,
        "card": card.summary() if card is not None else None,
        "path": str(info.path),
        "architecture": info.architecture,
        "provider": info.provider,
        "provider_version": provider_version,
        "parameters": stats.parameters,
        "active_parameters": stats.active_parameters,
        "moe": moe,
        "dtype": stats.dtype,
        "dtypes": stats.dtypes,
        "quantization": info.quantization or stats.quantization,
        "parameter_bytes": stats.parameter_bytes,
        "peak_memory_bytes": int(mx.get_peak_memory()),
        "kv_cache_bytes_per_token": stats.kv_bytes_per_token,
        "kv_caches": stats.kv_caches,
        "layers": stats.layers,
        "load_seconds": round(float(info.seconds), 4),
        "blas": blas.status().as_dict(),
        "kernels": kernel_report(model),
        "report": report.as_dict() if report is not None else None,
        "pickle_files": [str(p) for p in getattr(info, "pickle_files", [])],
    }


def print_summary(out: dict, info, explain: bool = False, stream=None) -> None:
    """The human-readable form of :func:`summary` (plus the load report when anything was off)."""
    from ..generation import human_bytes, human_count

    stream = stream or sys.stdout

    def row(label, value):
        print(f"  {label:<14}{value}", file=stream)

    card = out.get("card")
    print(out["model"] + (f"  (model card from {card['origin']}: {card['path']})" if card else ""), file=stream)
    row("checkpoint", out["path"])
    provider = out.get("provider") or "?"
    if out.get("provider_version"):
        provider += f" {out['provider_version']}"
    row("architecture", f"{out['architecture']} (served by {provider})")
    params = f"{human_count(out['parameters'])} ({out['parameters']:,})"
    if out["moe"]:
        params += f", {human_count(out['active_parameters'])} ({out['active_parameters']:,}) active per token"
    row("parameters", params)
    dtype = out["dtype"]
    if out.get("quantization"):
        q = out["quantization"]
        dtype += f", {q.get('bits')}-bit quantized (group size {q.get('group_size')})"
    row("dtype", dtype)
    row("memory", f"{human_bytes(out['parameter_bytes'])} of parameters, peak {human_bytes(out['peak_memory_bytes'])}")
    if out.get("kv_cache_bytes_per_token") is not None:
        shared = ""
        if out.get("kv_caches") and out.get("layers") and out["kv_caches"] < out["layers"]:
            shared = f" ({out['kv_caches']} of {out['layers']} layers store K/V; the others share them)"
        row("KV cache", f"{human_bytes(out['kv_cache_bytes_per_token'])} per token{shared}")
    row("load time", f"{out['load_seconds']:.2f} s")
    if out.get("blas"):
        from ..runtime.blas import BlasStatus

        row("CPU BLAS", BlasStatus(**out["blas"]).describe().removeprefix("BLAS: "))
    if out.get("kernels"):
        from ..kernels.layers import describe as describe_kernels

        row("CPU kernels", describe_kernels(out["kernels"]))
    report = info.report
    if report is None:
        return
    row("weights", report.summary())
    if not report.ok:
        print("\nLoad report (loaded with --no-strict):", file=stream)
        print(report.table(), file=stream)
    elif report.notes:
        for note in report.notes:
            row("note", note)
    if explain:
        print("\nWhere each parameter came from:", file=stream)
        for line in report.explain():
            print(f"  {line}", file=stream)


def dry_run(args, card) -> int:
    """The loader's plan: resolve, validate and map the weights from safetensors headers only."""
    from .. import loading

    plan = loading.plan(args.model, allow_pickle_weights=getattr(args, "allow_pickle_weights", False))
    report = plan.report
    if args.json:
        details = {"download": plan.download.as_dict()} if plan.download is not None else plan.info.as_dict()
        print_json({"model": args.model, "card": card.summary() if card else None, "dry_run": True, **details})
    else:
        print(f"{args.model}: dry run (" + ("nothing downloaded)" if plan.download is not None else "no tensor data read)"))
        for line in plan.lines():
            print(line)
        if args.explain and report is not None:
            print("\nWhere each parameter would come from:")
            for line in report.explain():
                print(f"  {line}")
    return 0 if report is None or report.ok or not args.strict else 1


def run(args):
    from .. import hub

    with hub.options(refresh=args.refresh, dry_run=args.dry_run, allow_pickle_weights=getattr(args, "allow_pickle_weights", None)):
        return _run(args)


def _run(args):
    from .. import distributed, loading

    distributed.quiet_unless_primary()  # under mlx.launch only rank 0 prints
    quiet_transformers(args)
    card = prepare_source(args.model)
    if args.dry_run:
        return dry_run(args, card)
    loading.resolve_source(args.model)  # a source that is not there fails now, before the slow imports
    import mlx_lm.models.base  # noqa: F401 - importing mlx-lm (and transformers) takes seconds; keep it out of the load time

    if args.prompt:
        model, tokenizer, info = loading.load(args.model, return_info=True, **load_options(args))
    else:
        model, info = loading.load_model(args.model, return_info=True, **load_options(args))
    distributed.shard_model(model, distributed.world())  # no-op in a single process
    finish_loading(model, info)
    out = summary(args, model, info, card)
    if args.json and not args.prompt:
        print_json(out)
        return 0
    if not args.json:
        # with --prompt the summary goes to stderr, so stdout holds only the generated text
        print_summary(out, info, explain=args.explain, stream=sys.stderr if args.prompt else sys.stdout)
    if args.prompt:
        from .generate_cmd import generate_and_print

        if not args.json:
            print(file=sys.stderr)
        return generate_and_print(args, model, tokenizer, extra=out if args.json else None, info=info)
    return 0
