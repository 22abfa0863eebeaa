"""Checkpoints quantized by other tools (FP8, GPTQ, AWQ): what the metadata says, and the load
steps around the sanitize rules that convert them.

The conversion itself is declarative: an architecture's rule file names the ops of
:mod:`.sanitize.quantized` for its linear layers, guarded by ``when: {quant_method: ...}``. This
module supplies what the rules cannot know:

1. :func:`read_quantization` reads the format from ``config.json``'s ``quantization_config``
   (vLLM/transformers ``fp8``, compressed-tensors FP8, ``gptq``, ``awq``), else ``quantize_config.json``
   (AutoGPTQ) or ``hf_quant_config.json`` (TensorRT-LLM / ModelOpt FP8), validates it, and gives
   the rules their config keys (``quant_method``; ``quant_checkpoint_format`` for GPTQ);
2. :func:`prepare` looks at every GPTQ layer before the rules run: a layer whose ``g_idx`` is the
   identity grouping (``i // group_size``) and whose groups MLX can express loses the redundant
   ``g_idx`` (→ the exact ``gptq_to_mlx`` rule); any other keeps (or gets) one (→ a dequantizing
   rule). Tencent's AngelSlim writes ``desc_act: true`` with ``static_groups: true``, which gives
   the identity grouping, so the ``g_idx`` values decide, not ``desc_act``;
3. :func:`finish` casts dequantized weights to the requested dtype (or the checkpoint's
   ``torch_dtype``), swaps in MLX quantized layers where ``.scales``/``.biases`` now exist, and
   writes what happened into the load report;
4. :func:`apply_checkpoint_quantization` swaps in MLX quantized layers where a checkpoint (written
   by ``mlx_lm.convert -q``, or converted by the rules) has ``.scales``;
5. :func:`model_quantization` describes the quantized layers of a loaded model in mlx-lm's
   ``quantization`` form, so ``zoo convert`` writes a folder ``mlx_lm.load`` reads.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from .errors import CheckpointError, ConfigError
from .files import read_json

FLOAT_DTYPES = ("float16", "bfloat16", "float32")
GPTQ_FORMATS = {"gptq": "v1 (AutoGPTQ: qzeros store z - 1)", "gptq_v2": "v2 (GPTQModel: qzeros store z)"}
IGNORED_SCALES = ("input_scale", "output_scale", "k_scale", "v_scale", "kv_scale")


@dataclass
class QuantFormat:
    """A checkpoint's quantization, as its metadata states it."""

    method: str  # "fp8", "gptq" or "awq"
    where: str  # FILE::$.path the metadata came from
    declared: str = ""  # the quant_method / quant_algo as written
    bits: int = 8
    group_size: Optional[int] = None
    desc_act: Optional[bool] = None
    sym: Optional[bool] = None
    checkpoint_format: Optional[str] = None
    ignored: List[str] = field(default_factory=list)
    torch_dtype: Optional[str] = None

    def rule_keys(self) -> dict:
        keys = {"quant_method": self.method}
        if self.checkpoint_format:
            keys["quant_checkpoint_format"] = self.checkpoint_format
        return keys

    def describe(self) -> str:
        if self.method == "fp8":
            return f"FP8 (float8_e4m3fn weights with weight_scale; {self.declared}, read from {self.where})"
        if self.method == "awq":
            return f"AWQ (AutoAWQ GEMM layout), 4-bit, group {self.group_size} (read from {self.where})"
        gs = "per channel" if self.group_size in (-1, None) else f"group {self.group_size}"
        return (f"GPTQ {GPTQ_FORMATS[self.checkpoint_format]}, {self.bits}-bit, {gs}, desc_act {self.desc_act}, "
                f"sym {self.sym} (read from {self.where})")

    def default_dtype(self) -> str:
        return self.torch_dtype if self.torch_dtype in FLOAT_DTYPES else "bfloat16"


def read_quantization(folder: Path, config: dict) -> Optional[QuantFormat]:
    """The FP8/GPTQ format of the checkpoint in ``folder``, or ``None`` (float or MLX-quantized)."""
    if isinstance(config.get("quantization"), dict):
        return None  # mlx-lm's own quantization (its quantization_config is a copy)
    folder = Path(folder)
    where, qc = f"{folder / 'config.json'}::$.quantization_config", config.get("quantization_config")
    if qc is None:
        for name in ("quantize_config.json", "hf_quant_config.json"):
            if (folder / name).is_file():
                where, qc = f"{folder / name}::$", read_json(folder / name, name)
                if name == "quantize_config.json" and isinstance(qc, dict):
                    qc.setdefault("quant_method", "gptq")
                break
    if qc is None:
        return None
    if not isinstance(qc, dict):
        raise ConfigError(f"{where}: expected an object, got {type(qc).__name__}")
    torch_dtype = config.get("torch_dtype") or config.get("dtype")
    torch_dtype = torch_dtype if isinstance(torch_dtype, str) else None
    method = qc.get("quant_method")
    if method is None and isinstance(qc.get("quantization"), dict):  # hf_quant_config.json (TensorRT-LLM, ModelOpt)
        method, qc, where = "modelopt", qc["quantization"], where + ".quantization"
    if method is None:
        return None  # no method named: not a format zoo converts (mlx-lm writes bits/group_size only)
    if method == "gptq":
        return _gptq(qc, where, torch_dtype)
    if method == "awq":
        return _awq(qc, where, torch_dtype)
    if method == "fp8":
        return _fp8(qc, where, torch_dtype)
    if method == "compressed-tensors":
        return _compressed_tensors(qc, where, torch_dtype)
    if method == "modelopt":
        algo = qc.get("quant_algo")
        if algo != "FP8":
            raise ConfigError(f"{where}.quant_algo: {algo!r} checkpoints are not supported; zoo reads FP8, GPTQ and MLX-quantized checkpoints")
        return QuantFormat("fp8", where, "quant_algo 'FP8'", ignored=list(qc.get("exclude_modules") or []), torch_dtype=torch_dtype)
    raise ConfigError(
        f"{where}.quant_method: {method!r} checkpoints are not supported; zoo reads 'fp8', FP8 'compressed-tensors', 'gptq', "
        "'awq' and MLX-quantized checkpoints",
        hint="use the release's bf16 or FP8/GPTQ variant, or convert it with its own tool to one of these",
    )


def _gptq(qc: dict, where: str, torch_dtype) -> QuantFormat:
    bits, gs = qc.get("bits"), qc.get("group_size", -1)
    if bits not in (2, 4, 8) or isinstance(bits, bool):
        raise ConfigError(f"{where}.bits: {bits!r}-bit GPTQ is not supported; zoo reads 2-, 4- and 8-bit GPTQ (3-bit packs values across words)")
    if isinstance(gs, bool) or not isinstance(gs, int) or (gs != -1 and gs <= 0):
        raise ConfigError(f"{where}.group_size: expected a positive integer or -1 (one group per row), got {gs!r}")
    fmt = qc.get("checkpoint_format") or qc.get("format") or "gptq"
    if fmt not in GPTQ_FORMATS:
        raise ConfigError(
            f"{where}.checkpoint_format: {fmt!r} is not supported; zoo reads the 'gptq' (v1) and 'gptq_v2' layouts",
            hint="repack the checkpoint to the plain gptq format with the tool that wrote it",
        )
    return QuantFormat("gptq", where, "quant_method 'gptq'", bits=bits, group_size=gs, desc_act=qc.get("desc_act"),
                       sym=qc.get("sym"), checkpoint_format=fmt, torch_dtype=torch_dtype)


def _awq(qc: dict, where: str, torch_dtype) -> QuantFormat:
    bits, gs = qc.get("bits", qc.get("w_bit")), qc.get("group_size", qc.get("q_group_size"))
    if bits != 4 or isinstance(bits, bool):
        raise ConfigError(f"{where}.bits: {bits!r}-bit AWQ is not supported; AutoAWQ's GEMM layout is 4-bit")
    if isinstance(gs, bool) or not isinstance(gs, int) or gs <= 0 or gs % 32:
        raise ConfigError(f"{where}.group_size: AWQ group size {gs!r} does not map onto MLX groups (a multiple of 32 is needed)")
    version = str(qc.get("version", "gemm")).lower()
    if version != "gemm":
        raise ConfigError(f"{where}.version: AWQ {version!r} packing is not supported; zoo reads AutoAWQ's 'gemm' layout")
    if qc.get("zero_point", True) is not True:
        raise ConfigError(f"{where}.zero_point: AWQ without zero points is not supported")
    return QuantFormat("awq", where, "quant_method 'awq'", bits=4, group_size=gs, torch_dtype=torch_dtype)


def _fp8(qc: dict, where: str, torch_dtype) -> QuantFormat:
    if qc.get("weight_block_size") is not None:
        raise ConfigError(f"{where}.weight_block_size: block-wise FP8 is not supported; zoo reads per-tensor and per-channel FP8 scales")
    if qc.get("fmt", "e4m3") != "e4m3":
        raise ConfigError(f"{where}.fmt: {qc.get('fmt')!r} FP8 is not supported; zoo reads float8_e4m3fn")
    return QuantFormat("fp8", where, "quant_method 'fp8'", ignored=list(qc.get("ignored_layers") or []), torch_dtype=torch_dtype)


def _compressed_tensors(qc: dict, where: str, torch_dtype) -> QuantFormat:
    groups = qc.get("config_groups")
    if not isinstance(groups, dict) or not groups:
        raise ConfigError(f"{where}.config_groups: a compressed-tensors config needs its config_groups")
    for name, group in groups.items():
        weights = group.get("weights") if isinstance(group, dict) else None
        if not isinstance(weights, dict) or weights.get("type") != "float" or weights.get("num_bits") != 8 \
                or weights.get("strategy") not in ("tensor", "channel"):
            raise ConfigError(
                f"{where}.config_groups.{name}.weights: only FP8 weights (type float, num_bits 8, strategy tensor or channel) "
                f"are supported, got {weights!r}",
            )
    if qc.get("format") not in (None, "naive-quantized", "float-quantized"):
        raise ConfigError(f"{where}.format: {qc.get('format')!r} is not supported; zoo reads the naive-quantized / float-quantized FP8 layouts")
    return QuantFormat("fp8", where, "quant_method 'compressed-tensors' (FP8)", ignored=list(qc.get("ignore") or []), torch_dtype=torch_dtype)


# -- before the rules ------------------------------------------------------------------------------


def prepare(tensors: Dict[str, object], fmt: QuantFormat, xp_kind: str) -> Dict[str, object]:
    """Count what the checkpoint holds and route each GPTQ layer (exact or dequantized)."""
    stats: Dict[str, object] = {"scales": Counter(), "ignored": Counter(), "exact": 0, "dequantize": Counter(), "groups": Counter()}
    if fmt.method == "fp8":
        for name, x in tensors.items():
            if name.endswith(".weight_scale"):
                size = 1
                for d in x.shape:
                    size *= d
                stats["scales"]["per-tensor" if size == 1 else "per-channel"] += 1
            elif name.rsplit(".", 1)[-1] in IGNORED_SCALES:
                stats["ignored"][name.rsplit(".", 1)[-1]] += 1
        return stats
    from .sanitize.quantized import gptq_geometry, mlx_group_size

    if fmt.method == "awq":  # contiguous groups only: every layer converts exactly (or the op names the problem)
        for name in (n for n in tensors if n.endswith(".qweight")):
            scales = tensors.get(name[: -len(".qweight")] + ".scales")
            if scales is not None and len(scales.shape) == 2 and len(tensors[name].shape) == 2:
                stats["exact"] += 1
                stats["groups"][mlx_group_size(tensors[name].shape[0], scales.shape[0])] += 1
        return stats
    decided: Dict[str, tuple] = {}  # prefix -> (reason or None, in_features, groups, MLX group size)
    for name in sorted(n for n in tensors if n.endswith(".qweight")):
        prefix = name[: -len(".qweight")]
        parts = [tensors.get(f"{prefix}.{k}") for k in ("qzeros", "scales")]
        if any(p is None for p in parts):
            continue  # the report names what is left over
        try:
            bits, in_f, _, groups = gptq_geometry(tuple(tensors[name].shape), tuple(parts[0].shape), tuple(parts[1].shape))
        except ValueError as e:
            raise CheckpointError(f"GPTQ layer {prefix}: {e}", hint="the checkpoint is damaged or not in the GPTQ layout its config names") from None
        g = mlx_group_size(in_f, groups)
        reason = None if g is not None else f"{groups} groups over {in_f} inputs (no MLX group size fits)"
        gkey = f"{prefix}.g_idx"
        if gkey in tensors and reason is None:
            if xp_kind == "mlx":
                reason = _act_order(tensors[gkey], in_f, groups, gkey)
            elif fmt.desc_act:
                stats["undecided"] = stats.get("undecided", 0) + 1
        decided[prefix] = (reason, in_f, groups, g)
    # experts of one layer are stacked into one tensor: they must all take the same path
    together: Dict[str, List[str]] = {}
    for prefix in decided:
        together.setdefault(re.sub(r"\.\d+\.(?=[^.]+$)", ".*.", prefix), []).append(prefix)
    for members in together.values():
        if len(members) > 1 and any(decided[m][0] for m in members):
            first = next(decided[m][0] for m in members if decided[m][0])
            for m in members:
                if decided[m][0] is None:
                    decided[m] = (f"{first}, like another expert of the same layer", *decided[m][1:])
    for prefix, (reason, in_f, groups, g) in decided.items():
        gkey = f"{prefix}.g_idx"
        if reason is None:
            tensors.pop(gkey, None)
            stats["exact"] += 1
            stats["groups"][g] += 1
        else:
            stats["dequantize"][reason] += 1
            if gkey not in tensors:
                tensors[gkey] = _identity_groups(in_f, groups, fmt.group_size, prefix, xp_kind)
    return stats


def _act_order(g_idx, in_f: int, groups: int, name: str) -> Optional[str]:
    import numpy as np

    try:
        g = np.asarray(g_idx).astype(np.int64).reshape(-1)
    except (RuntimeError, ValueError) as e:
        raise CheckpointError(f"cannot read {name}: {e}") from None
    if g.shape != (in_f,) or (g.size and (g.min() < 0 or g.max() >= groups)):
        raise CheckpointError(f"{name}: expected {in_f} group indices in 0..{groups - 1}, got shape {list(g.shape)}"
                              f"{f' with values {g.min()}..{g.max()}' if g.size else ''}",
                              hint="the checkpoint is damaged or not in the GPTQ layout its config names")
    if np.array_equal(g, np.arange(in_f) // (in_f // groups)):
        return None
    return "act-order g_idx (desc_act: inputs are grouped out of order; MLX groups are contiguous)"


def _identity_groups(in_f: int, groups: int, group_size: Optional[int], prefix: str, xp_kind: str):
    """The ``g_idx`` of a checkpoint that omits it: input ``i`` in group ``i // group_size``."""
    from .sanitize.tensors import Spec

    size = group_size if group_size and group_size > 0 else in_f
    if -(-in_f // size) != groups:
        raise CheckpointError(f"GPTQ layer {prefix}: {groups} groups of scales, but group_size {group_size} over {in_f} inputs makes {-(-in_f // size)}",
                              hint="the config's group_size does not belong to these weights")
    if xp_kind != "mlx":
        return Spec((in_f,), "int32")
    import mlx.core as mx

    return mx.arange(in_f, dtype=mx.int32) // size


# -- after the rules -------------------------------------------------------------------------------


def finish(model, tensors: dict, result, fmt: QuantFormat, stats: dict, *, dtype=None, xp_kind: str = "mlx") -> None:
    """Cast dequantized weights, swap in MLX quantized layers, and note what happened."""
    from .sanitize.quantized import DEQUANTIZING, EXACT
    from .sanitize.tensors import Spec, dtype_name

    target = dtype_name(dtype) if dtype is not None else fmt.default_dtype()
    dequantized = [k for k, p in result.provenance.items() if k in tensors and any(o in DEQUANTIZING for o in p.ops)]
    if dtype is None:
        for k in dequantized:
            x = tensors[k]
            if xp_kind == "mlx":
                import mlx.core as mx

                tensors[k] = x.astype(getattr(mx, target))
            else:
                tensors[k] = Spec(tuple(x.shape), target)
    converted = {k.rsplit(".", 1)[0] for k, p in result.provenance.items()
                 if k in tensors and k.endswith(".biases") and any(o in EXACT for o in p.ops)}
    if converted:
        group = stats["groups"].most_common(1)[0][0] if stats["groups"] else 64
        apply_checkpoint_quantization(model, {"bits": fmt.bits, "group_size": group}, tensors, config_file=fmt.where)
    result.notes.insert(0, _note(fmt, stats, target))


def _note(fmt: QuantFormat, stats: dict, target: str) -> str:
    head = f"quantization: {fmt.describe()}"
    if fmt.method == "fp8":
        n = sum(stats["scales"].values())
        kinds = " and ".join(f"{v} {k}" for k, v in sorted(stats["scales"].items()))
        text = f"{head}: {n} linear layers ({kinds} scales) dequantized to {target}"
        if stats["ignored"]:
            text += "; " + ", ".join(f"{v} {k}" for k, v in sorted(stats["ignored"].items())) + " tensors dropped (activation/KV scales of FP8 kernels)"
        return text
    parts = []
    if stats.get("undecided"):
        parts.append(f"act-order (desc_act) is decided per layer from g_idx when loading; this dry run reads no g_idx, "
                     f"so {stats['undecided']} layers are shown as if their grouping were the identity")
    if stats["exact"]:
        groups = ", ".join(str(g) for g in sorted(stats["groups"]))
        parts.append(f"{stats['exact']} linear layers converted exactly to MLX affine {fmt.bits}-bit "
                     f"(group {groups}; float32 scales and biases, where MLX reproduces {fmt.method.upper()}'s dequantization bit for bit)")
    for reason, n in sorted(stats["dequantize"].items()):
        parts.append(f"{n} linear layers dequantized to {target}: {reason}")
    return f"{head}: " + ("; ".join(parts) or "no GPTQ layers found")


def model_quantization(model) -> Optional[dict]:
    """mlx-lm's ``quantization`` dict for the quantized layers of ``model`` (``None`` if it has none)."""
    layers = {name: (m.group_size, m.bits, getattr(m, "mode", "affine")) for name, m in model.named_modules()
              if hasattr(m, "bits") and hasattr(m, "group_size") and "scales" in m}
    if not layers:
        return None
    (gs, bits, mode), _ = Counter(layers.values()).most_common(1)[0]
    out: dict = {"group_size": gs, "bits": bits, "mode": mode}
    for name, (g, b, m) in sorted(layers.items()):
        if (g, b, m) != (gs, bits, mode):
            out[name] = {"group_size": g, "bits": b, "mode": m}
    return out


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
