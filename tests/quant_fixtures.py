"""Build FP8 and GPTQ checkpoints from a float HunYuan checkpoint with the formats' own definitions.

Independent of zoo's conversion code (which these tests check):

- FP8 uses PyTorch's ``torch.float8_e4m3fn`` dtype (the OCP e4m3fn format) and saves with
  safetensors' torch API (dtype ``F8_E4M3``): ``q = (w / s).clamp(±448)``, per tensor
  ``s = amax / 448`` or per output channel ``s[o] = amax_o / 448``, ``w ≈ float(q) · s`` — the
  scheme of vLLM's ``fp8`` method and of compressed-tensors FP8 (``weight_scale``).
- GPTQ packing follows AutoGPTQ's ``QuantLinear.pack`` (github.com/AutoGPTQ/AutoGPTQ,
  ``auto_gptq/nn_modules/qlinear``; the same code ships in Tencent's AngelSlim
  ``GPTQQuantLinear.pack``): ``qweight[r, o]`` holds inputs ``r·(32/b) + j`` in bits ``j·b``;
  ``qzeros[g, c]`` holds outputs ``c·(32/b) + j`` the same way, storing ``z − 1`` in the v1
  ("gptq") format and ``z`` in GPTQModel's v2; ``scales [groups, out]`` float16; ``g_idx[i]`` the
  group of input ``i``. Dequantization (AutoGPTQ's forward): ``w[o, i] = s[g, o] · (q[o, i] − z[g, o])``.
  The quantizer is plain round-to-nearest min/max (GPTQ's error feedback changes the values,
  not the format).
- AWQ packing follows AutoAWQ's ``WQLinear_GEMM.from_linear`` (github.com/casper-hansen/AutoAWQ,
  ``awq/modules/linear/gemm.py``; AngelSlim's ``WQLinearGEMM.from_linear`` is the same):
  ``qweight [in, out/8]`` and ``qzeros [groups, out/8]`` pack 4-bit values along the output
  dimension, field ``i`` of word ``c`` holding column ``8c + [0, 2, 4, 6, 1, 3, 5, 7][i]``;
  ``scales [groups, out]`` float16; ``w = (q − z) · s`` (``pseudo_quantize_tensor``, zero point on).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

LINEAR = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
          "mlp.shared_mlp.gate_proj", "mlp.shared_mlp.up_proj", "mlp.shared_mlp.down_proj",
          "gate_proj", "up_proj", "down_proj")  # the last three: routed experts (and dense MLPs)


def is_quantized_linear(name: str) -> bool:
    """Linear weights Tencent's releases quantize (not embeddings, norms, the router or lm_head)."""
    return name.startswith("model.layers.") and name.endswith(".weight") and name[: -len(".weight")].endswith(LINEAR)


def float_weights(folder: Path) -> dict:
    from safetensors.numpy import load_file

    return {k: v.astype(np.float32) for k, v in load_file(str(folder / "model.safetensors")).items()}


TOKENIZER = ("tokenizer.json", "tokenizer_config.json", "generation_config.json")


def write(folder: Path, tensors: dict, config: dict, torch_tensors=False, tokenizer_from: Path = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER if tokenizer_from is not None else ():
        if (tokenizer_from / name).is_file():
            (folder / name).write_bytes((tokenizer_from / name).read_bytes())
    if torch_tensors:
        from safetensors.torch import save_file
    else:
        from safetensors.numpy import save_file
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


# -- FP8 -------------------------------------------------------------------------------------------


def fp8_checkpoint(src: Path, dst: Path, *, per_channel: bool, config_style: str = "fp8"):
    """An FP8 checkpoint of ``src`` and the float weights it dequantizes to (torch, float32)."""
    import torch

    config = json.loads((src / "config.json").read_text())
    out, reference = {}, {}
    for name, w in float_weights(src).items():
        t = torch.from_numpy(w)
        if not is_quantized_linear(name):
            out[name] = t
            reference[name] = w
            continue
        amax = t.abs().amax(dim=1, keepdim=True) if per_channel else t.abs().max()
        scale = (amax / 448.0).clamp(min=1e-12).to(torch.float32)
        q = (t / scale).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)
        prefix = name[: -len(".weight")]
        out[name] = q
        out[prefix + ".weight_scale"] = scale if per_channel else scale.reshape(())
        out[prefix + ".input_scale"] = torch.tensor(0.02, dtype=torch.float32)  # FP8-static activation scale
        reference[name] = (q.to(torch.float32) * scale).numpy()
    if config_style == "fp8":  # vLLM / early AngelSlim
        config["quantization_config"] = {"quant_method": "fp8", "activation_scheme": "static", "ignored_layers": ["lm_head"]}
    elif config_style == "hf_quant_config":  # only TensorRT-LLM's file, as AngelSlim also writes it
        folder = write(dst, out, config, torch_tensors=True, tokenizer_from=src)
        (folder / "hf_quant_config.json").write_text(json.dumps(
            {"quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": None, "exclude_modules": ["lm_head"]}}))
        return folder, reference
    else:  # compressed-tensors, as AngelSlim writes it since July 2025
        strategy = "channel" if per_channel else "tensor"
        config["quantization_config"] = {
            "quant_method": "compressed-tensors", "format": "naive-quantized", "quantization_status": "compressed",
            "ignore": ["lm_head"], "kv_cache_scheme": None,
            "config_groups": {"group_0": {"targets": ["Linear"], "output_activations": None,
                                          "weights": {"num_bits": 8, "type": "float", "strategy": strategy, "dynamic": False},
                                          "input_activations": {"num_bits": 8, "type": "float", "strategy": "tensor", "dynamic": False}}},
        }
    return write(dst, out, config, torch_tensors=True, tokenizer_from=src), reference


# -- GPTQ ------------------------------------------------------------------------------------------


def _pack_rows(values: np.ndarray, bits: int) -> np.ndarray:
    """[n, cols] small ints → [n·bits/32, cols] words: row r holds rows r·(32/b)+j in bits j·b."""
    per = 32 // bits
    v = values.astype(np.uint32) & np.uint32((1 << bits) - 1)
    out = np.zeros((v.shape[0] // per, v.shape[1]), dtype=np.uint32)
    for j in range(per):
        out |= v[j::per] << np.uint32(bits * j)
    return out.view(np.int32)


def gptq_layer(w: np.ndarray, *, bits=4, group_size=32, sym=True, v2=False, act_order=False, rng=None):
    """GPTQ tensors of one ``[out, in]`` weight and its dequantization (float16 and exact float32)."""
    import torch

    out_f, in_f = w.shape
    gs = in_f if group_size == -1 else group_size
    groups = -(-in_f // gs)
    g_idx = np.arange(in_f) // gs
    if act_order:  # inputs assigned to groups out of order, as desc_act without static groups does
        g_idx = rng.permutation(in_f) // gs
    maxq = (1 << bits) - 1
    scales = np.zeros((groups, out_f), np.float32)
    zeros = np.zeros((groups, out_f), np.int64)
    for g in range(groups):
        cols = w[:, g_idx == g]
        lo, hi = np.minimum(cols.min(axis=1), 0), np.maximum(cols.max(axis=1), 0)
        if sym:
            s = np.maximum(np.abs(lo), np.abs(hi)) * 2 / maxq
            z = np.full(out_f, (maxq + 1) // 2)
        else:
            s = (hi - lo) / maxq
            z = np.round(-lo / np.where(s == 0, 1, s)).astype(np.int64)
        s = np.where(s == 0, 1e-3, s)
        scales[g] = s
        zeros[g] = np.clip(z, 0 if v2 else 1, maxq)  # v1 cannot store z = 0 (it stores z - 1)
    scales = scales.astype(np.float16)
    s_i, z_i = scales.astype(np.float32)[g_idx].T, zeros[g_idx].T  # [out, in]
    q = np.clip(np.round(w / s_i) + z_i, 0, maxq).astype(np.int64)
    tensors = {
        "qweight": _pack_rows(q.T, bits),  # [in·b/32, out]
        "qzeros": _pack_rows((zeros - (0 if v2 else 1)).T, bits).T.copy(),  # packed along out: [groups, out·b/32]
        "scales": scales,
        "g_idx": g_idx.astype(np.int32),
    }
    # AutoGPTQ's forward: scales[g_idx] * (weight - zeros[g_idx]) in float16 (torch, one rounding)
    fp16 = (torch.from_numpy(scales)[torch.from_numpy(g_idx).long()].T * torch.from_numpy(q - z_i).to(torch.float16)).numpy()
    exact = s_i * (q - z_i).astype(np.float32)  # exact in float32: an fp16 value times a small integer
    return tensors, fp16, exact


def gptq_checkpoint(src: Path, dst: Path, *, bits=4, group_size=32, sym=True, v2=False, act_order=False, desc_act=None,
                    config_file="config.json", drop_g_idx=False, seed=0):
    """A GPTQ checkpoint of ``src`` and the float32 weights it dequantizes to (exactly)."""
    rng = np.random.default_rng(seed)
    config = json.loads((src / "config.json").read_text())
    out, reference = {}, {}
    for name, w in float_weights(src).items():
        if not is_quantized_linear(name):
            out[name] = w
            reference[name] = w
            continue
        tensors, _, exact = gptq_layer(w, bits=bits, group_size=group_size, sym=sym, v2=v2, act_order=act_order, rng=rng)
        prefix = name[: -len(".weight")]
        for k, v in tensors.items():
            if not (k == "g_idx" and drop_g_idx):
                out[f"{prefix}.{k}"] = v
        reference[name] = exact
    qc = {"bits": bits, "group_size": group_size, "desc_act": act_order if desc_act is None else desc_act, "sym": sym,
          "quant_method": "gptq", "checkpoint_format": "gptq_v2" if v2 else "gptq", "static_groups": False, "true_sequential": True}
    if config_file == "config.json":
        config["quantization_config"] = qc
        folder = write(dst, out, config, tokenizer_from=src)
    else:  # AutoGPTQ's separate quantize_config.json (no quant_method in older versions)
        qc.pop("quant_method")
        folder = write(dst, out, config, tokenizer_from=src)
        (folder / config_file).write_text(json.dumps(qc))
    return folder, reference


def reference_checkpoint(src: Path, dst: Path, reference: dict) -> Path:
    """The float checkpoint a dequantize-then-run reference loads (same config, float32 weights)."""
    config = json.loads((src / "config.json").read_text())
    config.pop("quantization_config", None)
    return write(dst, {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in reference.items()}, config, tokenizer_from=src)


# -- AWQ -------------------------------------------------------------------------------------------

AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def _pack_awq_cols(values: np.ndarray) -> np.ndarray:
    """[rows, out] 4-bit ints → [rows, out/8] words, AutoAWQ's interleaved column order."""
    v = values.astype(np.uint32)
    out = np.zeros((v.shape[0], v.shape[1] // 8), dtype=np.uint32)
    for col in range(out.shape[1]):
        for i in range(8):
            out[:, col] |= v[:, col * 8 + AWQ_ORDER[i]] << np.uint32(i * 4)
    return out.view(np.int32)


def awq_layer(w: np.ndarray, *, group_size=64):
    """AutoAWQ GEMM tensors of one ``[out, in]`` weight and its exact float32 dequantization."""
    out_f, in_f = w.shape
    groups = in_f // group_size
    wg = w.reshape(out_f, groups, group_size)
    lo, hi = wg.min(axis=2), wg.max(axis=2)
    scales = (np.maximum(hi - lo, 1e-5) / 15).astype(np.float16)  # [out, groups]
    s = scales.astype(np.float32)
    zeros = np.clip(-np.round(lo / s), 0, 15).astype(np.int64)
    q = np.clip(np.round(wg / s[:, :, None]) + zeros[:, :, None], 0, 15).astype(np.int64).reshape(out_f, in_f)
    tensors = {"qweight": _pack_awq_cols(q.T), "qzeros": _pack_awq_cols(zeros.T), "scales": scales.T.copy()}
    exact = (s.repeat(group_size, 1) * (q - zeros.repeat(group_size, 1)).astype(np.float32))
    return tensors, exact


def awq_checkpoint(src: Path, dst: Path, *, group_size=64):
    config = json.loads((src / "config.json").read_text())
    out, reference = {}, {}
    for name, w in float_weights(src).items():
        if not is_quantized_linear(name):
            out[name] = reference[name] = w
            continue
        tensors, exact = awq_layer(w, group_size=group_size)
        prefix = name[: -len(".weight")]
        out.update({f"{prefix}.{k}": v for k, v in tensors.items()})
        reference[name] = exact
    config["quantization_config"] = {"quant_method": "awq", "zero_point": True, "group_size": group_size, "bits": 4,
                                     "version": "gemm", "modules_to_not_convert": None}  # AngelSlim's AWQ config
    return write(dst, out, config, tokenizer_from=src), reference
