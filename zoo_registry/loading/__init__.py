"""Checkpoints on disk → an MLX model (and tokenizer), with a readable load report.

Pipeline for a plugin architecture (``load_model``):

1. resolve ``source``: a local folder, a model card name (materialised by :mod:`..cards`), or a
   Hugging Face repo id: the local cache first, else only the files loading needs are downloaded
   (:mod:`..hub`; ``HF_HUB_OFFLINE`` respected);
2. read ``config.json``, refuse remote code (``model_file``; ``auto_map`` for a ``model_type`` no
   plugin serves), merge card/user ``config_overrides``, validate (:func:`..configs.validate_config`);
3. build the model from the normalised config (nothing is evaluated, so nothing is allocated);
4. open the safetensors lazily (``mx.load`` maps them), apply the architecture's sanitize rules;
5. for ``mlx_lm.convert -q`` checkpoints, swap in quantized layers where ``.scales`` exist;
6. compare with the model's parameters (:mod:`..sanitize.report`): strict by default, raising
   :class:`~zoo_registry.errors.WeightsMismatchError` with one compressed table;
7. load, optionally quantize (``quantize=4|8``; modules the architecture declares ``keep_float``,
   such as MoE routers, stay unquantized),
   evaluate unless ``lazy``; with ``check_finite`` refuse NaN/inf weights, naming file and tensor.

Nothing from the checkpoint folder is ever executed: ``model_file`` and an ``auto_map`` that would
be needed are refused, pickles are refused unless ``allow_pickle_weights`` (then read by the
restricted reader of :mod:`..torch_pickle`, which runs no code), and the tokenizer is loaded by
:mod:`..tokenizer` (a tokenizer class a plugin registered is built from the folder's data files;
otherwise ``trust_remote_code=False``, and an ``auto_map`` is ignored with a warning, or refused
when the tokenizer cannot load without it). Errors raised deep inside MLX or transformers while
reading a checkpoint are translated here into :class:`CheckpointError` naming the folder.

mlx-lm's own architectures are delegated to ``mlx_lm.utils.load_model`` (its hand-written
``sanitize`` applies). :func:`plan` runs steps 1-6 on safetensors headers only: a dry run that
reads no tensor data.

This package is that pipeline: :func:`load_model` (here) runs the stages, each a module with one
job: :mod:`.resolve` (1), :mod:`.config` (2), :mod:`.plugin` (3, 4, 6), :mod:`.quantize` (5, 7),
:mod:`.builtin` (mlx-lm delegation), :mod:`.pickles` (pickle weights), :mod:`.integrity` (size,
finite values, evaluation), :mod:`.plan` (dry run), :mod:`.info` (the record of a load). Every name
importable from ``zoo_registry.loading`` before it became a package still is.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from .. import tied_head  # noqa: F401 - importable from here as before
from ..checkpoint import open_checkpoint
from ..errors import ConfigError
from ..files import read_json
from ..registry import Registry, get_registry
from ..tokenizer.loader import load_tokenizer  # noqa: F401 - moved to ..tokenizer; importable from here as before
from .builtin import MLX_LM_KEEP_FLOAT, build_mlx_lm, load_builtin, mlx_lm_classes
from .config import _card_overrides, _card_quantization, mx_dtype, prepare, read_config, refuse_remote_code
from .info import LoadInfo
from .integrity import _model_bytes, check_model_size, evaluate, refuse_non_finite, refuse_non_finite_parameters
from .pickles import load_builtin_pickles, note_pickles
from .plan import Plan, plan
from .plugin import build_model, load_plugin, prepare_weights, rules_for
from .quantize import KEEP_FLOAT, QUANT_BITS, apply_checkpoint_quantization, check_bits, keep_float_paths, quantize_model
from .resolve import Resolved, _resolve_source, _resolved, resolve_source

# The names these had when loading was one module (kept for callers that imported them).
_prepare = prepare
_load_builtin = load_builtin
_load_plugin = load_plugin
_mx_dtype = mx_dtype

__all__ = [
    "KEEP_FLOAT", "MLX_LM_KEEP_FLOAT", "QUANT_BITS", "LoadInfo", "Plan", "Resolved", "apply_checkpoint_quantization",
    "build_mlx_lm", "build_model", "check_bits", "check_model_size", "evaluate", "keep_float_paths", "load",
    "load_builtin", "load_builtin_pickles", "load_model", "load_plugin", "load_tokenizer", "mlx_lm_classes", "mx_dtype",
    "note_pickles", "plan", "prepare", "prepare_weights", "quantize_model", "read_config", "refuse_non_finite",
    "refuse_non_finite_parameters", "refuse_remote_code", "resolve_source", "rules_for",
]


def load_model(
    source,
    *,
    strict: bool = True,
    quantize: Optional[int] = None,
    group_size: int = 64,
    dtype=None,
    lazy: bool = False,
    return_info: bool = False,
    config_overrides: Optional[dict] = None,
    registry: Optional[Registry] = None,
    check_finite: bool = False,
    allow_pickle_weights: bool = False,
    pickle_staging=None,
):
    """Load a model from a folder, a model card or a cached Hugging Face repo.

    Args:
        source: folder path, card name or ``owner/name`` repo id.
        strict: raise :class:`WeightsMismatchError` unless every parameter is filled exactly once
            by a tensor of the right shape; with ``False`` load what fits and warn.
        quantize: quantize to this many bits after loading (the modules the architecture keeps
            in full precision stay so, see :mod:`.quantize`); a card's ``quantization`` applies
            when this is ``None``.
        group_size: quantization group size.
        dtype: cast floating-point weights (``"bfloat16"``, ``"float16"``, ``"float32"``).
        lazy: do not evaluate the parameters (they load on first use).
        return_info: also return a :class:`LoadInfo`.
        config_overrides: keys merged over ``config.json`` before validation.
        check_finite: read every floating-point tensor once more and raise
            :class:`CheckpointError` naming the file and tensor if any holds NaN or inf (and,
            after a ``dtype`` cast or quantization, naming the parameter that overflowed).
        allow_pickle_weights: read PyTorch pickle weights (``pytorch_model*.bin``) when the folder
            has no safetensors, with the restricted reader of :mod:`..torch_pickle` (tensor data
            only, no code from the file runs); the load report and a :class:`ZooWarning` say so.
        pickle_staging: a folder where pickle files are rewritten as safetensors, one at a time,
            and then mapped lazily (``zoo convert`` passes one so its memory stays at one shard).

    The CPU BLAS provider (:mod:`zoo_registry.runtime.blas`) is opt-in here: it loads a library
    process-wide only when ``ZOO_BLAS`` is set in the environment (or ``blas.activate()`` already
    ran); the ``zoo`` command activates it by default.
    """
    from ..runtime import blas

    blas.activate_if_requested()  # opt-in for library callers (ZOO_BLAS set); the zoo command activates by default
    from ..kernels.layers import adopt as adopt_kernels

    start = time.perf_counter()
    if registry is None:  # the public boundary: the process-wide registry by default
        registry = get_registry()
    registry, resolved, config, overrides, arch, normalised = prepare(source, config_overrides, registry,
                                                                       allow_pickle_weights or None)
    card_q = _card_quantization(resolved.card)
    if quantize is None and card_q is not None:
        quantize, group_size = card_q.get("bits"), card_q.get("group_size", group_size)
    check_bits(quantize)
    report = None
    ckpt = open_checkpoint(resolved.path, allow_pickle_weights)
    ckpt.staging = Path(pickle_staging) if pickle_staging is not None else None
    if check_finite:
        refuse_non_finite(ckpt)
    if arch.builtin and ckpt.pickle_files:
        model = load_builtin_pickles(ckpt, config, strict, dtype)
    elif arch.builtin:
        model = load_builtin(resolved.path, strict, overrides, dtype)
    else:
        model, report = load_plugin(ckpt, arch, config, normalised, strict, dtype, registry)
    if ckpt.pickle_files:
        note_pickles(ckpt, report)
    check_model_size(model, resolved.path)
    quantization = config.get("quantization") if isinstance(config.get("quantization"), dict) else None
    if quantization is None and report is not None:  # e.g. GPTQ layers converted exactly to MLX affine
        from ..quantized_checkpoints import model_quantization

        quantization = model_quantization(model)
    if quantize is not None:
        if quantization is not None:
            raise ConfigError(f"{resolved.path}: the checkpoint is already quantized ({quantization.get('bits')} bits); cannot quantize it again")
        quantization = quantize_model(model, quantize, group_size)
    adopt_kernels(model)  # zoo's CPU kernels for every architecture's (quantized) linears, see kernels/
    model.eval()
    if not lazy:
        evaluate(model, resolved.path)
    converted = getattr(report, "checkpoint_quantization", None)  # FP8/GPTQ: NaN bytes only show once decoded
    if check_finite and (dtype is not None or quantize is not None or converted is not None):
        refuse_non_finite_parameters(model, resolved.path, dtype, quantize, converted)
    info = LoadInfo(
        path=resolved.path, architecture=arch.name, provider=arch.provider, config=normalised, report=report,
        seconds=time.perf_counter() - start, quantization=quantization, card=resolved.card, raw_config=config,
        pickle_files=ckpt.pickle_files,
    )
    return (model, info) if return_info else model


def load(source, *, tokenizer_config: Optional[dict] = None, return_info: bool = False, **kwargs):
    """``(model, tokenizer)`` like ``mlx_lm.load`` (plus ``info`` with ``return_info=True``)."""
    if kwargs.get("registry") is None:  # the public boundary: one registry for the model and its tokenizer
        kwargs["registry"] = get_registry()
    model, info = load_model(source, return_info=True, **kwargs)
    eos = info.raw_config.get("eos_token_id")
    gen = info.path / "generation_config.json"
    if gen.is_file():
        try:
            eos = read_json(gen, "generation config").get("eos_token_id") or eos
        except (ConfigError, AttributeError):
            pass
    tokenizer = load_tokenizer(info.path, tokenizer_config, eos, registry=kwargs["registry"])
    return (model, tokenizer, info) if return_info else (model, tokenizer)
