"""FP8 and GPTQ checkpoints: peak memory of loading, and decode speed of the converted model.

Builds a mid-size HunYuan MoE checkpoint (bf16, random weights) and its FP8 and GPTQ-4-bit
versions (tests/quant_fixtures.py, the formats' own definitions), then, each in a fresh process:

- peak memory of ``load_model(fp8, quantize=8)`` against the bf16 size of the dequantized model
  (a whole-model float detour would peak above it; tensor by tensor stays near the 8-bit size);
- decode speed (one token at a time, KV cache) of the GPTQ checkpoint converted exactly (float32
  scales/biases), the same with ``dtype=bfloat16`` (scales cast), and mlx-lm's own 4-bit
  quantization of the bf16 and of the float32 model (``mlx_lm.convert -q``), as ratios.

    nice python benchmarks/quantized_releases.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = {
    "architectures": ["HunYuanForCausalLM"], "model_type": "hunyuan", "attention_bias": False, "vocab_size": 4096, "hidden_size": 512,
    "intermediate_size": 1024, "num_hidden_layers": 6, "num_attention_heads": 8, "num_key_value_heads": 4,
    "num_experts": 8, "moe_topk": 2, "num_shared_expert": 1, "use_mixed_mlp_moe": True, "use_qk_norm": True, "use_cla": False,
    "cla_share_factor": 1, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 4096,
    "rope_scaling": {"type": "dynamic", "alpha": 1000.0, "factor": 1.0}, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
}

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[3])
import mlx.core as mx
from mlx.utils import tree_flatten
from zoo_registry.loading import load_model
kind, folder = sys.argv[1], sys.argv[2]
out = {}
if kind == "peak":
    mx.reset_peak_memory()
    model = load_model(folder, quantize=8, group_size=64)
    out = {"peak": mx.get_peak_memory(), "params": sum(v.nbytes for _, v in tree_flatten(model.parameters()))}
else:
    opts = {"dtype": "bfloat16"} if kind == "gptq-bf16" else {}
    if kind == "mlx-lm":
        import mlx_lm
        model, _ = mlx_lm.load(folder)
    else:
        model = load_model(folder, **opts)
    from mlx_lm.models.cache import make_prompt_cache
    cache = make_prompt_cache(model)
    y = mx.array([[1, 2, 3, 4, 5, 6, 7, 8]])
    mx.eval(model(y, cache=cache))
    tok = mx.array([[9]])
    ts = []
    for _ in range(64):
        t = time.perf_counter(); mx.eval(model(tok, cache=cache)); ts.append(time.perf_counter() - t)
    out = {"tok_s": 1 / sorted(ts)[len(ts) // 2]}
print(json.dumps(out))
"""


def child(kind: str, folder: Path) -> dict:
    res = subprocess.run([sys.executable, "-c", CHILD, kind, str(folder), str(ROOT / "tests")], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    import mlx.core as mx
    import numpy as np
    from mlx.utils import tree_flatten
    from mlx_lm import convert as mlx_convert

    from quant_fixtures import fp8_checkpoint, gptq_checkpoint, write
    from zoo_registry.configs import validate_config
    from zoo_registry.convert import convert
    from zoo_registry.loading import build_model

    tmp = Path(tempfile.mkdtemp(prefix="zoo-quant-bench-"))
    mx.random.seed(0)
    arch, normalised = validate_config(dict(CONFIG), "bench config", None)
    model = build_model(arch, normalised)
    weights = {k: np.array(v) for k, v in tree_flatten(model.parameters())}
    src = tmp / "float32"
    from zoo_hunyuan.tiny import generate

    tokenizer = generate(tmp / "tiny")  # a small real tokenizer, for mlx_lm.convert / mlx_lm.load
    convert(write(tmp / "float32-mlx", weights, CONFIG, tokenizer_from=tokenizer), src, to="hf")  # per-expert tensors, as Tencent ships them
    bf16 = tmp / "bf16"
    convert(src, bf16, dtype="bfloat16")
    fp8, _ = fp8_checkpoint(src, tmp / "fp8", per_channel=False)
    gptq, _ = gptq_checkpoint(src, tmp / "gptq", bits=4, group_size=128, desc_act=True)
    q4 = tmp / "mlx-q4"
    mlx_convert(str(bf16), mlx_path=str(q4), quantize=True, q_group_size=128, q_bits=4)
    q4f32 = tmp / "mlx-q4-f32"
    mlx_convert(str(src), mlx_path=str(q4f32), quantize=True, q_group_size=128, q_bits=4, dtype="float32")
    bf16_bytes = sum(f.stat().st_size for f in bf16.glob("*.safetensors"))
    peak = child("peak", fp8)
    print(f"FP8 -> MLX 8-bit: peak {peak['peak'] / 2**20:.1f} MiB, parameters {peak['params'] / 2**20:.1f} MiB, "
          f"bf16 model {bf16_bytes / 2**20:.1f} MiB, FP8 file {sum(f.stat().st_size for f in fp8.glob('*.safetensors')) / 2**20:.1f} MiB")
    speeds = {k: child("mlx-lm" if k.startswith("mlx-lm") else k, f)["tok_s"]
              for k, f in (("gptq", gptq), ("gptq-bf16", gptq), ("mlx-lm", q4), ("mlx-lm-f32", q4f32))}
    base = speeds["mlx-lm"]
    for k, v in speeds.items():
        print(f"decode {k:10s} {v:8.1f} tok/s  ({v / base:.2f}x mlx-lm 4-bit bf16, {v / speeds['mlx-lm-f32']:.2f}x mlx-lm 4-bit float32)")


if __name__ == "__main__":
    main()
