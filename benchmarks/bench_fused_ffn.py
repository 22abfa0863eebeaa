"""The fused feed-forward block (one kernel call per MLP / MoE block) against the unfused kernels.

In one process, alternating, medians: the A13B-shaped small model of the llama.cpp comparison
(hidden 512, 8 layers, 16 experts top-4 + shared expert, vocab 32K; ``benchmarks/llamacpp``'s
cached checkpoint and zoo's own 4/8-bit folders of it), decode ms/token and prefill tokens/s with
``runtime.fused`` on and off (off = zoo's CPU kernels product by product, as before the fused
block), plus the MoE block alone at 1 and 16 tokens. The 1-minute load average is printed with
every figure: the machine is shared.

    nice python benchmarks/bench_fused_ffn.py [--dtypes q4,q8,bf16] [--reps 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "llamacpp"))


def load_avg() -> float:
    return os.getloadavg()[0]


def decode_ms(model, steps: int) -> float:
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    tok = mx.array([[7, 9, 11, 13]])
    mx.eval(model(tok, cache=cache))
    tok = tok[:, -1:]
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        tok = mx.argmax(model(tok, cache=cache)[:, -1], axis=-1)[:, None]
        mx.eval(tok)
    return (time.perf_counter() - start) / steps * 1e3, (time.process_time() - cpu) / steps * 1e3


def prefill_tps(model, n: int) -> float:
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    ids = mx.arange(n)[None] % 1000 + 10
    cache = make_prompt_cache(model)
    start, cpu = time.perf_counter(), time.process_time()
    mx.eval(model(ids, cache=cache))
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


def block_us(block, x, reps: int) -> float:
    import mlx.core as mx

    mx.eval(block(x))
    wall, cpu = [], []
    for _ in range(reps):
        start, start_cpu = time.perf_counter(), time.process_time()
        mx.eval(block(x))
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall) * 1e6, statistics.median(cpu) * 1e6


def ab(fn, reps: int):
    """``"on / off (cpu on / off)"``: medians of fn() -> (wall, cpu) with the fused block on and
    off, measured in alternation; and the wall and CPU speed-ups (off / on, or on / off for rates)."""
    from zoo_registry.runtime import fused

    on, off = [], []
    for _ in range(reps):
        on.append(fn())
        with fused.disabled():
            off.append(fn())
    med = [statistics.median(r[i] for r in rs) for rs in (on, off) for i in (0, 1)]
    return med  # wall on, cpu on, wall off, cpu off


def fmt(m, rate: bool = False, digits: int = 2) -> str:
    up = (m[0] / m[2], m[1] / m[3]) if rate else (m[2] / m[0], m[3] / m[1])
    return f"{m[0]:.{digits}f} / {m[2]:.{digits}f} ({m[1]:.{digits}f} / {m[3]:.{digits}f}) | {up[0]:.2f}x ({up[1]:.2f}x)"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dtypes", default="q4,q8,bf16")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    os.environ.setdefault("ZOO_THREADS", str(args.threads))
    from zoo_registry.runtime import blas

    blas.activate()
    import mlx.core as mx

    import build
    import zoo_registry
    from zoo_registry import kernels

    kernels.set_threads(args.threads)
    ckpt = build.cache_dir() / "ckpt"
    folders = {"f32": (ckpt / "a13b-small", None), "bf16": (ckpt / "a13b-small", "bfloat16"),
               "q8": (ckpt / "zoo-q8", None), "q4": (ckpt / "zoo-q4", None)}
    print(f"{kernels.status().describe()}; load average {load_avg():.1f}")
    print("wall (CPU) figures, fused / unfused, speed-up of the fused block\n")
    print("| dtype | decode ms/token | speed-up | prefill 128 tok/s | speed-up | MoE block, 1 token, us | speed-up "
          "| MoE block, 16 tokens, us | speed-up | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for d in args.dtypes.split(","):
        folder, dtype = folders[d]
        model = zoo_registry.load_model(str(folder), dtype=dtype)
        model = model[0] if isinstance(model, tuple) else model
        mx.eval(model.parameters())
        dec = ab(lambda: decode_ms(model, args.steps), args.reps)
        pre = ab(lambda: prefill_tps(model, 128), args.reps)
        moe = model.layers[0].mlp
        x1 = mx.random.normal((1, 1, moe.gate.wg.weight.shape[1])).astype(mx.bfloat16 if d == "bf16" else mx.float32)
        x16 = mx.random.normal((1, 16, x1.shape[-1])).astype(x1.dtype)
        b1 = ab(lambda: block_us(moe, x1, 50), args.reps)
        b16 = ab(lambda: block_us(moe, x16, 20), args.reps)
        print(f"| {d} | {fmt(dec)} | {fmt(pre, True, 0)} | {fmt(b1, digits=0)} | {fmt(b16, digits=0)} | {load_avg():.1f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
