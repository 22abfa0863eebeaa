"""``zoo load NAME|PATH|REPO_ID``: resolve, validate and load a model, then say what was loaded.

The summary gives the architecture and the plugin serving it, parameters (total, and active per
token for mixture-of-experts models), dtype, memory, load time, KV-cache bytes per token and the
load report when anything was off. ``--json`` prints the same as one JSON object. With
``--prompt`` it goes on to generate, as ``zoo generate`` does.

The steps up to a loaded model are :mod:`.pipeline`'s, shared with ``zoo generate``. MLX is
imported only inside :func:`run`, so building the parser stays cheap.
"""

from __future__ import annotations

import sys

from .generate_cmd import add_generation_args, generate_and_print
from .output import print_json
from .pipeline import add_load_args, hub_options, load
from .pipeline import dry_run, finish_loading, load_options, prepare_source, quiet_transformers  # noqa: F401 - were defined here


def add_parser(sub):
    p = sub.add_parser("load", help="load a model and show its architecture, size, memory and load report")
    add_load_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--explain", action="store_true", help="show the full load report: which rule produced each parameter")
    p.add_argument("--dry-run", action="store_true", help="resolve and validate the card, config and checkpoint without building "
                   "the model; for a Hugging Face repo not yet cached, list the files and bytes it would download")
    add_generation_args(p, prompt_required=False)
    p.set_defaults(run=run)


def summary(args, model, info, card, registry) -> dict:
    """Everything `zoo load` reports, as a JSON-ready dict."""
    import mlx.core as mx

    from ..generation import model_stats
    from ..kernels.layers import report as kernel_report
    from ..runtime import blas

    stats = model_stats(model, info.config)
    moe = stats.active_parameters != stats.parameters
    try:
        provider_version = registry.architecture(info.architecture).provider_version
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


def run(args):
    """``zoo load`` with the registry :func:`~.main.main` gives it (``args.registry``)."""
    with hub_options(args):
        return _run(args, args.registry)


def _run(args, registry):
    loaded = load(args, registry, tokenizer=bool(args.prompt))
    if loaded.dry_run_status is not None:
        return loaded.dry_run_status
    model, info = loaded.model, loaded.info
    out = summary(args, model, info, loaded.card, registry)
    if args.json and not args.prompt:
        print_json(out)
        return 0
    if not args.json:
        # with --prompt the summary goes to stderr, so stdout holds only the generated text
        print_summary(out, info, explain=args.explain, stream=sys.stderr if args.prompt else sys.stdout)
    if args.prompt:
        if not args.json:
            print(file=sys.stderr)
        return generate_and_print(args, model, loaded.tokenizer, extra=out if args.json else None, info=info, registry=registry)
    return 0
