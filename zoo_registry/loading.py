"""Checkpoints on disk → an MLX model (and tokenizer), with a readable load report.

Pipeline for a plugin architecture (``load_model``):

1. resolve ``source``: a local folder, a model card name (materialised by :mod:`.cards`), or a
   Hugging Face repo id: the local cache first, else only the files loading needs are downloaded
   (:mod:`.hub`; ``HF_HUB_OFFLINE`` respected);
2. read ``config.json``, refuse remote code (``model_file``; ``auto_map`` for a ``model_type`` no
   plugin serves), merge card/user ``config_overrides``, validate (:func:`.configs.validate_config`);
3. build the model from the normalised config (nothing is evaluated, so nothing is allocated);
4. open the safetensors lazily (``mx.load`` maps them), apply the architecture's sanitize rules;
5. for ``mlx_lm.convert -q`` checkpoints, swap in quantized layers where ``.scales`` exist;
6. compare with the model's parameters (:mod:`.sanitize.report`): strict by default, raising
   :class:`~zoo_registry.errors.WeightsMismatchError` with one compressed table;
7. load, optionally quantize (``quantize=4|8``; the MoE router ``mlp.gate.wg`` stays unquantized),
   evaluate unless ``lazy``; with ``check_finite`` refuse NaN/inf weights, naming file and tensor.

Nothing from the checkpoint folder is ever executed: ``model_file`` and an ``auto_map`` that would
be needed are refused, pickles are refused unless ``allow_pickle_weights`` (then read by the
restricted reader of :mod:`.torch_pickle`, which runs no code), and the tokenizer is loaded by
:mod:`.tokenizer` (a tokenizer class a plugin registered is built from the folder's data files;
otherwise ``trust_remote_code=False``, and an ``auto_map`` is ignored with a warning, or refused
when the tokenizer cannot load without it). Errors raised deep inside MLX or transformers while
reading a checkpoint are translated here into :class:`CheckpointError` naming the folder.

mlx-lm's own architectures are delegated to ``mlx_lm.utils.load_model`` (its hand-written
``sanitize`` applies). :func:`plan` runs steps 1-6 on safetensors headers only: a dry run that
reads no tensor data.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from . import tied_head
from .checkpoint import REPO_ID, Checkpoint, check_index, open_checkpoint, resolve_hf_repo
from .errors import (
    CheckpointError,
    CheckpointNotFoundError,
    ConfigError,
    PluginError,
    UnsafeInputError,
    WeightsMismatchError,
    ZooError,
    ZooWarning,
    did_you_mean,
)
from .files import describe_missing, read_json
from .registry import Architecture, Registry, get_registry
from .resources import import_target, resource_path
from .tokenizer.loader import load_tokenizer  # noqa: F401 - moved to .tokenizer; importable from here as before

# MoE routers keep full precision when quantizing: a few KB each, and near-tie routing flips
# otherwise (HunYuan's router is ``mlp.gate.wg``; mlx-lm models name theirs ``mlp.gate``).
ROUTER_SUFFIXES = ("mlp.gate.wg", "mlp.gate")
QUANT_BITS = (2, 3, 4, 5, 6, 8)


@dataclass
class LoadInfo:
    """What :func:`load_model` did, for ``zoo load`` and ``--explain``."""

    path: Path
    architecture: str
    provider: str
    config: Dict[str, Any]
    report: Optional[Any] = None  # sanitize.report.LoadReport (None for mlx-lm built-ins)
    seconds: float = 0.0
    quantization: Optional[Dict[str, Any]] = None
    card: Optional[Any] = None
    raw_config: Dict[str, Any] = field(default_factory=dict, repr=False)  # config.json + overrides, before normalising
    pickle_files: list = field(default_factory=list)  # weight files read with the restricted pickle reader

    def as_dict(self) -> dict:
        return {
            "path": str(self.path),
            "architecture": self.architecture,
            "provider": self.provider,
            "seconds": round(self.seconds, 3),
            "quantization": self.quantization,
            "card": getattr(self.card, "name", self.card),
            "report": self.report.as_dict() if self.report is not None else None,
            "pickle_files": [str(p) for p in self.pickle_files],
        }


@dataclass
class Resolved:
    path: Optional[Path]
    card: Optional[Any] = None
    download: Optional[Any] = None  # hub.DownloadPlan: a dry run of a repo that is not (completely) cached


# -- resolving ------------------------------------------------------------------------------------


def resolve_source(source, registry: Optional[Registry] = None, *, allow_pickle_weights: Optional[bool] = None,
                   refresh: Optional[bool] = None, dry_run: Optional[bool] = None) -> Resolved:
    """A folder path, a model card name, or a Hugging Face repo id (``owner/name``, or
    ``owner/name/folder`` for one folder of a repo) → a local folder.

    The keyword flags go to :func:`.hub.resolve` (``None``: the :func:`.hub.options` in effect).
    With ``dry_run``, a repo that would need a download gives ``Resolved(None, card, download=plan)``.
    """
    from . import hub

    with hub.options(allow_pickle_weights=allow_pickle_weights, refresh=refresh, dry_run=dry_run):
        return _resolve_source(source, registry)


def _resolve_source(source, registry: Optional[Registry] = None) -> Resolved:
    registry = registry or get_registry()
    path = Path(source).expanduser()
    if os.path.islink(path) and not path.exists():
        raise CheckpointNotFoundError(describe_missing(path, "checkpoint folder"))
    if path.exists():
        if not path.is_dir():
            raise CheckpointNotFoundError(f"{path}: expected a checkpoint folder (with config.json), got a file")
        return Resolved(path)
    name = str(source)
    catalogue = registry.cards()
    if name in catalogue:
        from . import cards

        card = cards.resolve(name, registry)  # schema-validated, architecture and `requires` checked
        return _resolved(cards.materialize(card), card)
    if REPO_ID.match(name):
        return _resolved(resolve_hf_repo(name))
    parts = name.split("/")
    if len(parts) > 2 and REPO_ID.match("/".join(parts[:2])) and all(re.match(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$", p) for p in parts[2:]):
        return _resolved(resolve_hf_repo("/".join(parts[:2]), subfolder="/".join(parts[2:])))  # owner/name/folder
    raise CheckpointNotFoundError(
        f"{name}: no such folder, model card or Hugging Face repo id{did_you_mean(name, catalogue.cards)}",
        hint="`zoo list` shows the model cards; a repo id looks like owner/name",
    )


def _resolved(found, card=None) -> Resolved:
    return Resolved(Path(found), card) if isinstance(found, (str, Path)) else Resolved(None, card, download=found)


def read_config(folder: Path) -> Tuple[dict, str]:
    file = folder / "config.json"
    if not file.is_file():
        problem = describe_missing(file, "config.json")
        cls = CheckpointNotFoundError if problem.endswith("not found") else CheckpointError
        raise cls(problem, hint="a checkpoint folder needs the model's config.json")
    config = read_json(file, "config")
    if not isinstance(config, dict):
        raise ConfigError(f"{file}::$: a model config must be a JSON object, got {type(config).__name__}")
    return config, str(file)


def refuse_remote_code(config: dict, file: str, registry: Registry) -> None:
    """zoo never runs Python shipped with a checkpoint."""
    if "model_file" in config:
        raise UnsafeInputError(
            f"{file}::$.model_file: the config asks to import {config['model_file']!r} from the checkpoint; zoo never runs code shipped with weights",
            hint="install a zoo plugin that serves this model_type instead",
        )
    if "auto_map" in config:
        model_type = config.get("model_type")
        try:
            registry.architecture(model_type) if isinstance(model_type, str) else None
        except KeyError:
            raise UnsafeInputError(
                f"{file}::$.auto_map: model_type {model_type!r} is served by no installed plugin, and its auto_map points to the "
                "checkpoint's own Python code, which zoo never runs",
                hint="install a zoo plugin serving this model_type (`zoo list` shows what is installed)",
            ) from None


def _card_overrides(card) -> dict:
    if card is None:
        return {}
    value = card.data.get("config_overrides") or {}
    return dict(value) if isinstance(value, dict) else {}


def _card_quantization(card) -> Optional[dict]:
    if card is None:
        return None
    q = card.data.get("quantization")
    return dict(q) if isinstance(q, dict) else None


def _prepare(source, config_overrides, registry, allow_pickle_weights: Optional[bool] = None):
    registry = registry or get_registry()
    resolved = resolve_source(source, registry, allow_pickle_weights=allow_pickle_weights)
    raw, file = read_config(resolved.path)
    refuse_remote_code(raw, file, registry)
    overrides = {**_card_overrides(resolved.card), **(config_overrides or {})}
    config = {**raw, **overrides}
    from .configs import validate_config

    arch, normalised = validate_config(config, file, registry)
    return registry, resolved, config, overrides, arch, normalised


# -- loading --------------------------------------------------------------------------------------


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
        quantize: quantize to this many bits after loading (router kept unquantized); a card's
            ``quantization`` applies when this is ``None``.
        group_size: quantization group size.
        dtype: cast floating-point weights (``"bfloat16"``, ``"float16"``, ``"float32"``).
        lazy: do not evaluate the parameters (they load on first use).
        return_info: also return a :class:`LoadInfo`.
        config_overrides: keys merged over ``config.json`` before validation.
        check_finite: read every floating-point tensor once more and raise
            :class:`CheckpointError` naming the file and tensor if any holds NaN or inf (and,
            after a ``dtype`` cast or quantization, naming the parameter that overflowed).
        allow_pickle_weights: read PyTorch pickle weights (``pytorch_model*.bin``) when the folder
            has no safetensors, with the restricted reader of :mod:`.torch_pickle` (tensor data
            only, no code from the file runs); the load report and a :class:`ZooWarning` say so.
        pickle_staging: a folder where pickle files are rewritten as safetensors, one at a time,
            and then mapped lazily (``zoo convert`` passes one so its memory stays at one shard).
    """
    from .runtime import blas

    blas.activate()  # before this process first imports mlx.core, or it cannot take effect
    from .kernels.layers import adopt as adopt_kernels

    start = time.perf_counter()
    registry, resolved, config, overrides, arch, normalised = _prepare(source, config_overrides, registry,
                                                                       allow_pickle_weights or None)
    card_q = _card_quantization(resolved.card)
    if quantize is None and card_q is not None:
        quantize, group_size = card_q.get("bits"), card_q.get("group_size", group_size)
    if quantize is not None and quantize not in QUANT_BITS:
        raise ConfigError(f"quantize={quantize!r}: expected one of {', '.join(map(str, QUANT_BITS))} bits")
    report = None
    ckpt = open_checkpoint(resolved.path, allow_pickle_weights)
    ckpt.staging = Path(pickle_staging) if pickle_staging is not None else None
    if check_finite:
        refuse_non_finite(ckpt)
    if arch.builtin and ckpt.pickle_files:
        from .pickle_loading import load_builtin_pickles

        model = load_builtin_pickles(ckpt, config, strict, dtype)
    elif arch.builtin:
        model = _load_builtin(resolved.path, strict, overrides, dtype)
    else:
        model, report = _load_plugin(ckpt, arch, config, normalised, strict, dtype, registry)
    if ckpt.pickle_files:
        from .pickle_loading import note_pickles

        note_pickles(ckpt, report)
    check_model_size(model, resolved.path)
    quantization = config.get("quantization") if isinstance(config.get("quantization"), dict) else None
    if quantization is None and report is not None:  # e.g. GPTQ layers converted exactly to MLX affine
        from .quantized_checkpoints import model_quantization

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


def evaluate(model, path: Path) -> None:
    """Evaluate the parameters; failures inside MLX become :class:`CheckpointError` naming ``path``.

    One parameter at a time: a parameter computed from checkpoint tensors (dequantized FP8,
    re-quantized with ``quantize``, stacked experts) then needs only its own sources in memory, so
    peak memory stays near the final model's size (benchmarks/quantized_releases.py: FP8 → MLX
    8-bit peaks at 1.5x the 8-bit model instead of 3x).
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten

    try:
        for _, value in tree_flatten(model.parameters()):
            mx.eval(value)
    except MemoryError:
        raise CheckpointError(f"{path}: not enough memory to load the weights ({_model_bytes(model) / 2**30:.1f} GiB)",
                              hint="quantize (--quantize 4), pick a smaller model, or close other programs") from None
    except (RuntimeError, ValueError, OSError) as e:
        raise CheckpointError(f"{path}: reading the weights failed: {e}",
                              hint="a weight file is damaged or changed while loading; download or convert it again") from None


def _model_bytes(model) -> int:
    from mlx.utils import tree_flatten

    return sum(v.nbytes for _, v in tree_flatten(model.parameters()))


def check_model_size(model, path: Path) -> None:
    """Refuse a built model above the parameter limit before anything is evaluated (allocated).

    Plugins check their configs first (:func:`.configs.check_size`); this catches any architecture,
    including mlx-lm's, whose config made it that far (e.g. with ``strict=False``).
    """
    from mlx.utils import tree_flatten

    from .configs import check_size

    count = sum(v.size for _, v in tree_flatten(model.parameters()))
    try:
        check_size(count, "$")
    except ConfigError as e:
        raise ConfigError(f"{path / 'config.json'}::{e}", hint=e.hint) from None


def refuse_non_finite(ckpt: Checkpoint) -> None:
    """Raise :class:`CheckpointError` if any floating-point tensor of ``ckpt`` holds NaN or inf."""
    found = ckpt.non_finite(limit=4)
    if found:
        more = f" (and {len(found) - 1} more tensor{'s' if len(found) > 2 else ''}{' at least' if len(found) == 4 else ''})" if len(found) > 1 else ""
        raise CheckpointError(
            found[0] + more,
            hint="the checkpoint is corrupt or was saved from a diverged run; download or convert it again "
            "(loading without --check-finite would use these values)",
        )


def refuse_non_finite_parameters(model, path: Path, dtype=None, quantize=None, converted=None) -> None:
    """After a cast or quantization: raise naming the first parameter that became NaN/inf."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from .sanitize.tensors import is_floating

    for name, value in tree_flatten(model.parameters()):
        if is_floating(value.dtype) and not bool(mx.isfinite(value).all().item()):
            what = f"casting to {str(dtype).rsplit('.', 1)[-1]}" if dtype is not None else f"{quantize}-bit quantization"
            if converted is not None:
                raise CheckpointError(
                    f"{path}: parameter {name!r} holds NaN or inf after decoding the checkpoint's {converted.method.upper()} weights "
                    f"({'FP8 NaN bytes (S.1111.111) or ' if converted.method == 'fp8' else ''}scales out of range)",
                    hint="the checkpoint is corrupt; download it again (loading without --check-finite would use these values)",
                )
            raise CheckpointError(
                f"{path}: parameter {name!r} holds NaN or inf after {what} (the checkpoint's values are finite)",
                hint="its values do not fit the target dtype; load in bfloat16 or float32 instead",
            )


def load(source, *, tokenizer_config: Optional[dict] = None, return_info: bool = False, **kwargs):
    """``(model, tokenizer)`` like ``mlx_lm.load`` (plus ``info`` with ``return_info=True``)."""
    model, info = load_model(source, return_info=True, **kwargs)
    eos = info.raw_config.get("eos_token_id")
    gen = info.path / "generation_config.json"
    if gen.is_file():
        try:
            eos = read_json(gen, "generation config").get("eos_token_id") or eos
        except (ConfigError, AttributeError):
            pass
    tokenizer = load_tokenizer(info.path, tokenizer_config, eos, registry=kwargs.get("registry"))
    return (model, tokenizer, info) if return_info else (model, tokenizer)


def _load_builtin(path: Path, strict: bool, overrides: dict, dtype):
    """mlx-lm's own architecture: reuse its loader and hand-written sanitize."""
    from mlx_lm.utils import load_model as mlx_load_model

    try:
        model, _ = mlx_load_model(path, lazy=True, strict=strict, model_config=overrides or None)
    except FileNotFoundError as e:
        raise CheckpointNotFoundError(f"{path}: {e}") from None
    except ValueError as e:
        raise CheckpointError(f"{path}: mlx-lm could not load the checkpoint: {e}") from None
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError) as e:  # mlx-lm's ModelArgs on a config it does not expect
        raise CheckpointError(f"{path}: mlx-lm could not load the checkpoint: {type(e).__name__}: {e}",
                              hint="mlx-lm does not validate configs; check config.json against the model's documentation") from None
    if dtype is not None:
        model.set_dtype(_mx_dtype(dtype))
    return model


def build_mlx_lm(ckpt: Checkpoint, config: dict, name: str):
    """``(model, tensors)`` for an mlx-lm architecture: its own class and ``sanitize`` (which needs
    arrays; they stay lazy for safetensors) over the checkpoint's tensors."""
    from mlx_lm.utils import _get_classes  # mlx-lm's own dispatch

    try:
        model_class, args_class = _get_classes(config=config)
        model = model_class(args_class.from_dict(config))
        tensors = ckpt.tensors()
        if hasattr(model, "sanitize"):
            tensors = model.sanitize(tensors)
    except ZooError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, RuntimeError) as e:  # mlx-lm validates nothing
        raise CheckpointError(f"{ckpt.path}: mlx-lm could not build model_type {name!r} from config.json: {type(e).__name__}: {e}",
                              hint="mlx-lm does not validate configs; check config.json against the model's documentation") from None
    return model, tensors


def _mx_dtype(dtype):
    import mlx.core as mx

    name = str(dtype).rsplit(".", 1)[-1]
    if name not in ("float16", "bfloat16", "float32"):
        raise ConfigError(f"dtype={dtype!r}: expected float16, bfloat16 or float32")
    return getattr(mx, name)


def rules_for(arch: Architecture, registry: Optional[Registry] = None):
    from .sanitize.rules import EMPTY, load_rules

    if not arch.rules:
        return EMPTY
    return load_rules(resource_path(arch.rules), registry)


def build_model(arch: Architecture, normalised: dict):
    """Build (without evaluating) the plugin model from its normalised config.

    The config was validated, so a crash here is the plugin's bug: it is reported as a
    :class:`PluginError` naming the plugin rather than as a traceback.
    """
    try:
        build = import_target(arch.model)
    except PluginError as e:
        raise PluginError(f"plugin {arch.provider!r}: model of model_type {arch.name!r}: {e}", hint=e.hint) from None
    try:
        model = build(dict(normalised))
    except ZooError:
        raise
    except MemoryError:
        raise ConfigError(f"model_type {arch.name!r}: not enough memory to build the model") from None
    except Exception as e:  # noqa: BLE001 - plugin code may raise anything
        raise PluginError(
            f"plugin {arch.provider!r}: building model_type {arch.name!r} ({arch.model}) crashed on a validated config: {type(e).__name__}: {e}",
            hint=f"this is a bug in the plugin {arch.provider!r}; report it with the config.json that triggers it",
        ) from e
    import mlx.nn as nn

    if not isinstance(model, nn.Module):
        raise PluginError(f"plugin {arch.provider!r}: {arch.model} returned {type(model).__name__}, not an mlx.nn.Module")
    return model


def prepare_weights(ckpt: Checkpoint, arch, config, normalised, model, *, xp_kind: str, registry=None, dtype=None):
    """Sanitize the checkpoint's tensors and make ``model`` quantized where they are.

    Returns ``(tensors, engine result, report)``. ``xp_kind`` is ``"mlx"`` (real lazy arrays) or
    ``"shapes"`` (headers only, for :func:`plan`). FP8 and GPTQ checkpoints
    (:mod:`.quantized_checkpoints`) are converted by the rules; ``dtype`` is what dequantized
    weights become (default: the checkpoint's ``torch_dtype``).
    """
    from mlx.utils import tree_flatten

    from . import quantized_checkpoints as qc
    from .sanitize import engine, report as report_mod
    from .sanitize.tensors import SHAPES, describe, mlx_backend

    check_index(ckpt)
    tensors = ckpt.tensors() if xp_kind == "mlx" else dict(ckpt.specs())
    rules = rules_for(arch, registry)
    fmt = qc.read_quantization(ckpt.path, config)
    stats = qc.prepare(tensors, fmt, xp_kind) if fmt is not None else None
    rule_config = {**normalised, **fmt.rule_keys()} if fmt is not None else normalised
    result = engine.apply(rules, tensors, rule_config, xp=mlx_backend() if xp_kind == "mlx" else SHAPES, registry=registry)
    tensors = result.tensors
    q = config.get("quantization")
    if isinstance(q, dict):
        apply_checkpoint_quantization(model, q, tensors, config_file=str(ckpt.path / "config.json"))
    elif fmt is not None:
        qc.finish(model, tensors, result, fmt, stats, dtype=dtype, xp_kind=xp_kind)
    expected = {k: describe(v) for k, v in tree_flatten(model.parameters())}
    got = {k: describe(v) for k, v in tensors.items()}
    rep = report_mod.compare(
        expected, got, provenance=result.provenance, notes=[*normalised.get(tied_head.CONFIG_NOTES, ()), *result.notes], applied=result.applied,
        source=ckpt.path, architecture=arch.name,
    )
    rep.checkpoint_quantization = fmt  # the FP8/GPTQ format read (None for float and MLX checkpoints)
    return tensors, result, rep


def _load_plugin(ckpt: Checkpoint, arch, config, normalised, strict, dtype, registry):
    path = ckpt.path
    tied_head.before_build(ckpt, config, normalised)  # a real lm_head is loaded, never dropped
    model = build_model(arch, normalised)
    tensors, _, report = prepare_weights(ckpt, arch, config, normalised, model, xp_kind="mlx", registry=registry, dtype=dtype)
    if not report.ok:
        tied_head.refuse_missing_head(report, config, normalised, path, strict)  # never left random
        if strict:
            raise WeightsMismatchError(
                report.message(), report=report,
                hint="pass strict=False (`--no-strict`) to load what fits, or check that config.json belongs to these weights",
            )
        warnings.warn(report.message(), ZooWarning, stacklevel=3)
    if dtype is not None:
        target = _mx_dtype(dtype)
        from .sanitize.tensors import is_floating

        tensors = {k: (v.astype(target) if is_floating(v.dtype) else v) for k, v in tensors.items()}
    items = [(k, tensors[k]) for k in report.loaded]
    tensors.clear()
    model.load_weights(items, strict=False)
    return model, report


def apply_checkpoint_quantization(model, quantization: dict, tensors: dict, config_file: str = "config.json") -> None:
    """Swap in quantized layers for a checkpoint written by ``mlx_lm.convert -q``.

    A layer is quantized iff its ``.scales`` tensor exists (as in mlx-lm); bits and group size are
    read from the shapes (per-layer entries of ``quantization`` take precedence).
    """
    import mlx.nn as nn

    bits, gs = quantization.get("bits"), quantization.get("group_size")
    mode = quantization.get("mode", "affine")
    if not isinstance(bits, int) or not isinstance(gs, int):
        raise ConfigError(f"{config_file}::$.quantization: expected integer bits and group_size, got {quantization!r}")

    def predicate(path, module):
        if path in quantization:
            return quantization[path]
        if not hasattr(module, "to_quantized") or f"{path}.scales" not in tensors:
            return False
        in_dims = module.weight.shape[-1]
        scales, weight = tensors[f"{path}.scales"], tensors[f"{path}.weight"]
        return {"group_size": in_dims // scales.shape[-1], "bits": (weight.shape[-1] * 32) // in_dims, "mode": mode}

    nn.quantize(model, group_size=gs, bits=bits, mode=mode, class_predicate=predicate)


def quantize_model(model, bits: int, group_size: int = 64) -> dict:
    """Affine-quantize every layer whose input size divides by ``group_size``, except MoE routers."""
    import mlx.nn as nn

    if group_size not in (32, 64, 128):
        raise ConfigError(f"group_size={group_size!r}: expected 32, 64 or 128")
    own = getattr(model, "quant_predicate", None)

    def predicate(path, module):
        if not hasattr(module, "to_quantized") or path.endswith(ROUTER_SUFFIXES):
            return False
        if module.weight.shape[-1] % group_size:
            return False
        return own(path, module) if own is not None else True

    nn.quantize(model, group_size=group_size, bits=bits, class_predicate=predicate)
    return {"group_size": group_size, "bits": bits, "mode": "affine"}


# -- planning -------------------------------------------------------------------------------------


@dataclass
class Plan:
    """A dry run: what loading ``source`` would do, computed from safetensors headers.

    For a Hugging Face repo that is not (completely) cached, nothing is downloaded: ``download``
    (a :class:`.hub.DownloadPlan`) lists the files and bytes loading would fetch, and ``info`` and
    ``report`` are ``None``.
    """

    info: Optional[LoadInfo]
    report: Any
    tensors: Dict[str, Any]
    download: Optional[Any] = None

    def lines(self):
        if self.download is not None:
            return self.download.lines() + ["  (run without --dry-run to download, then --dry-run again for the load plan)"]
        out = [f"{self.info.path} (architecture {self.info.architecture}, provider {self.info.provider})", f"  {self.report.summary()}"]
        out += [f"  note: {n}" for n in self.report.notes]
        if not self.report.ok:
            out.append(self.report.table())
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def plan(source, *, config_overrides: Optional[dict] = None, registry: Optional[Registry] = None,
         allow_pickle_weights: bool = False) -> Plan:
    """Show what loading would do without reading tensor data (shapes from headers only).

    A Hugging Face repo missing from the cache is not downloaded: the plan lists what would be.
    With ``allow_pickle_weights``, pickle weights are planned from their ``data.pkl`` (shapes only)
    for plugin architectures; mlx-lm's own ones need the tensors for their ``sanitize``.
    """
    from mlx.utils import tree_flatten

    from .sanitize import report as report_mod
    from .sanitize.tensors import describe

    start = time.perf_counter()
    first = resolve_source(source, registry, dry_run=True, allow_pickle_weights=allow_pickle_weights)
    if first.download is not None:
        return Plan(None, None, {}, download=first.download)
    registry, resolved, config, overrides, arch, normalised = _prepare(source, config_overrides, registry,
                                                                       allow_pickle_weights or None)
    ckpt = open_checkpoint(resolved.path, allow_pickle_weights)
    if arch.builtin:
        model, tensors = build_mlx_lm(ckpt, config, arch.name)
        expected = {k: describe(v) for k, v in tree_flatten(model.parameters())}
        rep = report_mod.compare(expected, {k: describe(v) for k, v in tensors.items()}, source=resolved.path, architecture=arch.name)
    else:
        tied_head.before_build(ckpt, config, normalised, plan=True)
        model = build_model(arch, normalised)
        tensors, _, rep = prepare_weights(ckpt, arch, config, normalised, model, xp_kind="shapes", registry=registry)
    if ckpt.pickle_files:
        rep.notes.append(f"{len(ckpt.pickle_files)} PyTorch pickle file(s) would be read with zoo's restricted reader")
    info = LoadInfo(resolved.path, arch.name, arch.provider, normalised, rep, time.perf_counter() - start,
                    config.get("quantization"), resolved.card, config, pickle_files=ckpt.pickle_files)
    return Plan(info, rep, {k: describe(v) for k, v in tensors.items()})
