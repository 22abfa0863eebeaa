"""Sanitize ops for checkpoints quantized by other tools: FP8 (e4m3) and GPTQ.

Each op turns the tensors of one linear layer into what an MLX model holds, lazily (nothing is
evaluated here; a memory-mapped checkpoint is read tensor by tensor when the model is evaluated):

- :class:`DequantizeFP8` — ``weight_scale`` + float8 ``weight`` → float ``weight``.
  The FP8 format of vLLM's ``fp8`` method, of compressed-tensors' ``naive-quantized`` /
  ``float-quantized`` FP8 and of Tencent's AngelSlim: ``w = float(q) * weight_scale`` with a
  per-tensor (``[]``/``[1]``) or per-output-channel (``[out]``/``[out, 1]``) float32 scale.
  ``q`` is OCP/NVIDIA ``float8_e4m3fn``: 1 sign, 4 exponent bits (bias 7), 3 mantissa bits,
  subnormals at exponent 0, **no infinities**, NaN only at ``S.1111.111``, max ±448
  ("OCP 8-bit Floating Point Specification (OFP8)", 2023; arXiv:2209.05433).
  ``mx.load`` returns such tensors as their raw ``uint8`` bytes; they are decoded exactly
  (:func:`e4m3fn_table` is the format's definition; ``mx.from_fp8`` computes the same).
- :class:`GPTQToMLX` (AutoGPTQ "v1" layout) / :class:`GPTQv2ToMLX` (GPTQModel "v2") —
  ``qweight``/``qzeros``/``scales`` → MLX affine ``weight``/``scales``/``biases``, **exactly**.
  GPTQ (Frantar et al., arXiv:2210.17323, as packed by AutoGPTQ's ``QuantLinear``) stores
  ``qweight`` int32 ``[in·bits/32, out]`` with input ``k·(32/bits)+j`` of each column in bits
  ``j·bits``; ``qzeros`` int32 ``[groups, out·bits/32]`` packed the same way along ``out``;
  ``scales`` ``[groups, out]``; and dequantizes ``w[o, i] = scales[g, o] · (q[o, i] − z[g, o])``
  with ``g = g_idx[i]``, where the v1 format stores ``z − 1`` (AutoGPTQ's ``zeros -= 1`` when
  packing, ``+ 1`` when unpacking) and v2 stores ``z``. MLX's affine layout (``mx.quantize``)
  packs the same low-bits-first order along the input dimension into uint32 ``[out, in·bits/32]``,
  so the packed words are reused bit for bit (a transpose), and ``w = scales·q + biases`` with
  ``biases = −scales·z``. Scales and biases are written in float32: there ``scales·q`` and
  ``scales·z`` are exact (a 16-bit float times an integer below 2^8), so MLX's dequantization
  yields exactly ``scales·(q − z)``; in float16 MLX rounds ``scales·q`` first and is not exact.
  A GPTQ group of ``G`` inputs becomes ``G/g`` MLX groups of the largest ``g`` in 128/64/32
  dividing ``G`` (the scale repeated), so ``group_size`` -1/256/... convert exactly too.
  Only the identity grouping (``g_idx[i] = i // G``) fits MLX's contiguous groups; the loader
  removes such a ``g_idx`` before the rules run and keeps the others.
- :class:`DequantizeGPTQ` / :class:`DequantizeGPTQv2` — ``g_idx``/``qweight``/``qzeros``/``scales``
  → float ``weight`` by the formula above, for act-order (``desc_act``) layers and group sizes
  MLX cannot express.

- :class:`AWQToMLX` — AutoAWQ's GEMM layout (Tencent's ``*-AWQ-Int4``), exactly, by repacking.

All outputs of the dequantizing ops are float32 (the exact products); the loader casts them to
the requested dtype. Only 2-, 4- and 8-bit GPTQ packings are read (3-bit packs across words).
"""

from __future__ import annotations

from typing import List, Tuple

from . import Op
from .tensors import Spec, dtype_name

MLX_GROUP_SIZES = (128, 64, 32)
GPTQ_BITS = (2, 4, 8)


def e4m3fn_table():
    """The 256 float8_e4m3fn values (index = the byte), as float32, from the format's definition."""
    import numpy as np

    out = np.empty(256, dtype=np.float32)
    for byte in range(256):
        sign = -1.0 if byte & 0x80 else 1.0
        exp, man = (byte >> 3) & 0xF, byte & 0x7
        if exp == 0xF and man == 0x7:
            out[byte] = np.nan  # S.1111.111: the only NaN; e4m3fn has no infinities
        elif exp == 0:
            out[byte] = sign * (man / 8.0) * 2.0 ** -6  # subnormal
        else:
            out[byte] = sign * (1.0 + man / 8.0) * 2.0 ** (exp - 7)
    return out


def decode_e4m3fn(x, native: bool = True):
    """Raw e4m3fn bytes (an ``mx.array`` of uint8) → float32, exactly."""
    import mlx.core as mx

    if native and hasattr(mx, "from_fp8"):
        return mx.from_fp8(x, dtype=mx.float32)
    return mx.take(mx.array(e4m3fn_table()), x.astype(mx.uint32))


def _shapes(xp) -> bool:
    return getattr(xp, "name", "") == "shapes"


def _is_byte(x) -> bool:
    return dtype_name(x.dtype) in ("uint8", "int8", "float8_e4m3")


class DequantizeFP8(Op):
    """``(weight_scale, weight)`` → float32 ``weight = float(weight) · weight_scale``."""

    name = "dequantize_fp8"

    def forward(self, xp, inputs, *, suffix=None):
        scale, weight = inputs
        if dtype_name(weight.dtype) == "float8_e5m2":
            raise ValueError("the weight is float8_e5m2; only float8_e4m3fn FP8 checkpoints are supported")
        if not _is_byte(weight):
            raise ValueError(f"the weight is {dtype_name(weight.dtype)}, not float8_e4m3 (1 byte per value)")
        shape = _scale_shape(tuple(scale.shape), tuple(weight.shape))
        if _shapes(xp):
            return [Spec(tuple(weight.shape), "float32")]
        import mlx.core as mx

        s = scale.astype(mx.float32).reshape(shape)
        return [decode_e4m3fn(weight.astype(mx.uint8) if dtype_name(weight.dtype) == "int8" else weight) * s]


def _scale_shape(scale: Tuple[int, ...], weight: Tuple[int, ...]) -> Tuple[int, ...]:
    """The shape that broadcasts a per-tensor or per-output-channel scale over the weight."""
    size = 1
    for d in scale:
        size *= d
    if size == 1:
        return (1,) * len(weight)
    rows = weight[:-1]
    if scale in (rows, rows + (1,)):
        return rows + (1,)
    raise ValueError(
        f"weight_scale of shape {list(scale)} fits neither per-tensor ([] or [1]) nor per-channel ({list(rows)} or {list(rows + (1,))}) "
        f"scaling of a weight of shape {list(weight)}; block-wise FP8 (weight_block_size) is not supported"
    )


def gptq_geometry(qweight_shape, qzeros_shape, scales_shape) -> Tuple[int, int, int, int]:
    """``(bits, in_features, out_features, groups)`` of a GPTQ layer, from its tensor shapes."""
    if len(qweight_shape) != 2 or len(qzeros_shape) != 2 or len(scales_shape) != 2:
        raise ValueError(
            f"GPTQ tensors must be 2-d, got qweight {list(qweight_shape)}, qzeros {list(qzeros_shape)}, scales {list(scales_shape)}"
        )
    groups, out = scales_shape
    if qzeros_shape[0] != groups or qweight_shape[1] != out or out == 0 or (qzeros_shape[1] * 32) % out:
        raise ValueError(
            f"GPTQ shapes do not fit together: qweight {list(qweight_shape)} (in·bits/32, out), "
            f"qzeros {list(qzeros_shape)} (groups, out·bits/32), scales {list(scales_shape)} (groups, out)"
        )
    bits = qzeros_shape[1] * 32 // out
    if bits not in GPTQ_BITS:
        raise ValueError(f"{bits}-bit GPTQ packing is not supported (only {', '.join(map(str, GPTQ_BITS))} bits)")
    return bits, qweight_shape[0] * 32 // bits, out, groups


def mlx_group_size(in_features: int, groups: int):
    """The MLX group size that represents GPTQ's groups exactly, or ``None``."""
    if groups <= 0 or in_features % groups:
        return None
    gs = in_features // groups
    return next((g for g in MLX_GROUP_SIZES if gs % g == 0), None)


def _unpack(mx, packed, bits: int, axis: int):
    """Unpack low-bits-first ``bits``-bit fields of uint32 words along ``axis`` (0 or 1)."""
    per = 32 // bits
    words = packed.view(mx.uint32) if packed.dtype != mx.uint32 else packed
    shifts = mx.arange(0, 32, bits, dtype=mx.uint32)
    mask = mx.array((1 << bits) - 1, dtype=mx.uint32)
    if axis == 0:  # [rows, cols] → [rows·per, cols]
        fields = (words[:, None, :] >> shifts[None, :, None]) & mask
        return fields.reshape(words.shape[0] * per, words.shape[1])
    fields = (words[:, :, None] >> shifts[None, None, :]) & mask  # [rows, cols·per]
    return fields.reshape(words.shape[0], words.shape[1] * per)


class _GPTQ(Op):
    zero_offset = 1  # v1: qzeros stores z - 1


class GPTQToMLX(_GPTQ):
    """``(qweight, qzeros, scales)`` of AutoGPTQ's v1 layout → MLX ``(weight, scales, biases)``, exactly."""

    name = "gptq_to_mlx"

    def forward(self, xp, inputs, *, suffix=None):
        qweight, qzeros, scales = inputs
        bits, in_f, out, groups = gptq_geometry(tuple(qweight.shape), tuple(qzeros.shape), tuple(scales.shape))
        g = mlx_group_size(in_f, groups)
        if g is None:
            raise ValueError(f"GPTQ groups ({groups} over {in_f} inputs) do not map onto MLX group sizes {MLX_GROUP_SIZES}; dequantize instead")
        n = in_f // g
        if _shapes(xp):
            return [Spec((out, in_f * bits // 32), "uint32"), Spec((out, n), "float32"), Spec((out, n), "float32")]
        import mlx.core as mx

        weight = mx.contiguous(qweight.view(mx.uint32).T)  # the packed words are MLX's, transposed
        z = (_unpack(mx, qzeros, bits, axis=1) + self.zero_offset).astype(mx.float32)  # [groups, out]
        s = scales.astype(mx.float32)
        repeat = n // groups
        s_t, b_t = s.T, (-(s * z)).T
        if repeat > 1:
            s_t, b_t = mx.repeat(s_t, repeat, axis=1), mx.repeat(b_t, repeat, axis=1)
        return [weight, mx.contiguous(s_t), mx.contiguous(b_t)]


class GPTQv2ToMLX(GPTQToMLX):
    """The same for GPTQModel's v2 layout (``qzeros`` stores the zero point itself)."""

    name = "gptq_v2_to_mlx"
    zero_offset = 0


class DequantizeGPTQ(_GPTQ):
    """``(g_idx, qweight, qzeros, scales)`` of the v1 layout → float32 ``weight [out, in]``."""

    name = "dequantize_gptq"

    def forward(self, xp, inputs, *, suffix=None):
        g_idx, qweight, qzeros, scales = inputs
        bits, in_f, out, groups = gptq_geometry(tuple(qweight.shape), tuple(qzeros.shape), tuple(scales.shape))
        if tuple(g_idx.shape) != (in_f,):
            raise ValueError(f"g_idx has shape {list(g_idx.shape)}, expected [{in_f}] (one group index per input)")
        if _shapes(xp):
            return [Spec((out, in_f), "float32")]
        import mlx.core as mx

        q = _unpack(mx, qweight, bits, axis=0).astype(mx.int32)  # [in, out]
        z = _unpack(mx, qzeros, bits, axis=1).astype(mx.int32) + self.zero_offset  # [groups, out]
        g = g_idx.astype(mx.int32)
        w = mx.take(scales.astype(mx.float32), g, axis=0) * (q - mx.take(z, g, axis=0)).astype(mx.float32)
        return [mx.contiguous(w.T)]


class DequantizeGPTQv2(DequantizeGPTQ):
    """The same for GPTQModel's v2 layout."""

    name = "dequantize_gptq_v2"
    zero_offset = 0


AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)  # AutoAWQ GEMM: field i of a word holds output column 8c + AWQ_ORDER[i]


class AWQToMLX(Op):
    """``(qweight, qzeros, scales)`` of AutoAWQ's GEMM layout → MLX ``(weight, scales, biases)``, exactly.

    AutoAWQ (Lin et al., arXiv:2306.00978; ``WQLinear_GEMM.from_linear``, also Tencent's AngelSlim
    ``WQLinearGEMM``) packs 4-bit values along the *output* dimension: ``qweight`` int32
    ``[in, out/8]``, ``qzeros`` int32 ``[groups, out/8]``, field ``i`` of word ``c`` holding column
    ``8c + AWQ_ORDER[i]``; ``scales [groups, out]``; ``w = (q − z) · s`` with contiguous groups.
    The integers are unpacked and repacked along the input dimension (MLX's layout); scales and
    biases are float32 for the reason given for GPTQ.
    """

    name = "awq_to_mlx"

    def forward(self, xp, inputs, *, suffix=None):
        qweight, qzeros, scales = inputs
        if len(qweight.shape) != 2 or len(scales.shape) != 2 or tuple(qzeros.shape) != (scales.shape[0], qweight.shape[1]) \
                or scales.shape[1] != qweight.shape[1] * 8:
            raise ValueError(f"AWQ shapes do not fit together: qweight {list(qweight.shape)} (in, out/8), qzeros {list(qzeros.shape)} "
                             f"(groups, out/8), scales {list(scales.shape)} (groups, out); only 4-bit GEMM packing is read")
        in_f, out = qweight.shape[0], scales.shape[1]
        groups = scales.shape[0]
        g = mlx_group_size(in_f, groups)
        if g is None or in_f % 8:
            raise ValueError(f"AWQ groups ({groups} over {in_f} inputs) do not map onto MLX group sizes {MLX_GROUP_SIZES}")
        n = in_f // g
        if _shapes(xp):
            return [Spec((out, in_f // 8), "uint32"), Spec((out, n), "float32"), Spec((out, n), "float32")]
        import mlx.core as mx

        def unpack(words):  # [rows, out/8] → [rows, out] in column order
            fields = _unpack(mx, words, 4, axis=1).reshape(words.shape[0], -1, 8)  # field i at [..., i]
            inverse = [AWQ_ORDER.index(k) for k in range(8)]
            return mx.take(fields, mx.array(inverse), axis=2).reshape(words.shape[0], -1)

        q = unpack(qweight).T.reshape(out, in_f // 8, 8)  # [out, in] grouped by 8 inputs
        weight = (q << mx.arange(0, 32, 4, dtype=mx.uint32)).sum(axis=2).astype(mx.uint32)  # disjoint fields: sum == or
        z = unpack(qzeros).astype(mx.float32)
        s = scales.astype(mx.float32)
        s_t, b_t = s.T, (-(s * z)).T
        if n > groups:
            s_t, b_t = mx.repeat(s_t, n // groups, axis=1), mx.repeat(b_t, n // groups, axis=1)
        return [weight, mx.contiguous(s_t), mx.contiguous(b_t)]


OPS: List[type] = [DequantizeFP8, GPTQToMLX, GPTQv2ToMLX, DequantizeGPTQ, DequantizeGPTQv2, AWQToMLX]
EXACT = ("gptq_to_mlx", "gptq_v2_to_mlx", "awq_to_mlx")
DEQUANTIZING = ("dequantize_fp8", "dequantize_gptq", "dequantize_gptq_v2")
