"""zoo's CPU kernels vs MLX's own ops, in one process, as ratios (issue: quantized HunYuan on the CPU).

Two parts, each measured with the kernels on and off (``zoo_registry.kernels.disabled()``, i.e.
what zoo ran before them) in alternation, medians of ``--reps``:

- ``ops``: the products of an A13B-shaped small HunYuan (hidden 512, 16 experts of 512, top-4,
  vocab 32000): quantized (MLX affine, group 64) 4/8-bit and bfloat16 weights, one row (decode)
  and 128 rows (prefill), dense and the MoE gather form; the kernels' weight bandwidth (GB/s) and
  throughput (GFLOP/s) beside the ratio.
- ``model``: the whole model with random weights (zoo's HunYuan plugin): prefill of 128 tokens
  and greedy decode, tokens/s, for 4-bit, 8-bit and bfloat16.

``--threads 1,2`` repeats everything per kernel thread count; ``--compete`` runs a busy process
(one core's worth of competing load) during the measurement. The machine's single-thread memory
bandwidth (numpy sum over 512 MB) is printed for the "fraction of the bandwidth bound" figure.

- ``matvec``: every one-row product kernel (4/8-bit, bfloat16, float16, float32 weights) alone, its
  weight bandwidth against the machine's single-thread read bandwidth, weights in and out of cache.

    python benchmarks/bench_kernels.py [--parts ops,matvec,model] [--threads 1,2] [--compete] [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from zoo_registry.runtime import blas  # noqa: E402

blas.activate()  # the BLAS zoo uses (before mlx.core is imported): the "off" side is zoo as it was

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402

from zoo_registry import kernels  # noqa: E402

D, I, E, K_TOP, V = 512, 512, 16, 4, 32000
CONFIG = {  # Hunyuan-A13B's shape, scaled down (the small config of the llama.cpp comparison)
    "hidden_size": D, "num_hidden_layers": 8, "num_attention_heads": 4, "num_key_value_heads": 1,
    "attention_head_dim": 128, "intermediate_size": I, "moe_intermediate_size": I, "num_experts": E,
    "moe_topk": K_TOP, "num_shared_expert": 1, "use_mixed_mlp_moe": True, "use_cla": False, "cla_share_factor": 1,
    "vocab_size": V, "max_position_embeddings": 32768,
    "rope_scaling": {"type": "dynamic", "factor": 1.0, "alpha": 1000.0},
}


def timed(fn, reps: int):
    """Median (wall seconds, CPU seconds of the whole process) of ``reps`` evaluations of ``fn()``.

    On a shared machine a long op is descheduled in favour of other processes: the CPU time
    (all threads) shows what the op itself costs, the wall time what a user waits."""
    start = time.perf_counter()
    mx.eval(fn())
    if time.perf_counter() - start > 0.5:  # MLX's slow cases: one timed run is enough
        reps = 1
    wall, cpu = [], []
    for _ in range(reps):
        start, start_cpu = time.perf_counter(), time.process_time()
        mx.eval(fn())
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def pair(fn, reps: int):
    """((wall, cpu) with the kernels, (wall, cpu) with MLX's ops), measured in alternation."""
    on, off = [], []
    for _ in range(3):
        on.append(timed(fn, reps))
        with kernels.disabled():
            off.append(timed(fn, reps))
    med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
    return (med(on, 0), med(on, 1)), (med(off, 0), med(off, 1))


def op_cases():
    from zoo_registry.runtime.linear import matmul_t

    mx.random.seed(0)
    cases = []
    for fmt in ("q4", "q8", "bf16"):
        for (N, Kd, what) in [(512, D, "attn/expert proj 512x512"), (V, D, "LM head 32000x512")]:
            w = mx.random.normal((N, Kd)) * 0.05
            if fmt == "bf16":
                wb = w.astype(mx.bfloat16)
                mx.eval(wb)
                nbytes = wb.nbytes
                for M in (1, 128):
                    x = mx.random.normal((1, M, Kd)).astype(mx.bfloat16)
                    cases.append((f"{fmt} {what} M={M}", lambda x=x, wb=wb: matmul_t(x, wb), nbytes, 2 * N * Kd * M))
            else:
                bits = int(fmt[1])
                wq, s, b = mx.quantize(w, group_size=64, bits=bits)
                mx.eval(wq, s, b)
                nbytes = wq.nbytes + s.nbytes + b.nbytes
                for M in (1, 128):
                    x = mx.random.normal((1, M, Kd))
                    cases.append((f"{fmt} {what} M={M}",
                                  lambda x=x, wq=wq, s=s, b=b, bits=bits: kernels.quantized_matmul(x, wq, s, b, 64, bits),
                                  nbytes, 2 * N * Kd * M))
        if fmt != "bf16":  # the routed experts: gather form, decode (1 token) and prefill (128 tokens)
            bits = int(fmt[1])
            w = mx.random.normal((E, I, D)) * 0.05
            wq, s, b = mx.quantize(w, group_size=64, bits=bits)
            mx.eval(wq, s, b)
            per_expert = (wq.nbytes + s.nbytes + b.nbytes) // E
            for T in (1, 128):
                idx = mx.array(np.random.default_rng(T).integers(0, E, (T, K_TOP)), dtype=mx.uint32)
                x = mx.random.normal((T, 1, 1, D))
                used = len(set(np.array(idx).ravel().tolist()))
                cases.append((f"{fmt} experts gather_qmm {E}x{I}x{D} T={T} k={K_TOP}",
                              lambda x=x, idx=idx, wq=wq, s=s, b=b, bits=bits: kernels.gather_qmm(x, wq, s, b, idx, 64, bits),
                              per_expert * used, 2 * I * D * T * K_TOP))
    return cases


def run_ops(reps: int) -> list:
    rows = []
    for name, fn, nbytes, flops in op_cases():
        (on, on_cpu), (off, off_cpu) = pair(fn, reps)
        cpu_ratio = f"{off_cpu / on_cpu:.1f}x" if on_cpu > 0 else "n/a"
        rows.append(f"| {name} | {off * 1e3:.3f} | {on * 1e3:.3f} | **{off / on:.1f}x** | {cpu_ratio} | "
                    f"{nbytes / on / 1e9:.1f} | {flops / on / 1e9:.1f} |")
    return ["| op | MLX ms | zoo kernels ms | speed-up (wall) | speed-up (CPU time) | kernels GB/s (weights, wall) | "
            "kernels GFLOP/s (wall) |", "|---|---|---|---|---|---|---|", *rows]


def build_model(fmt: str):
    from zoo_hunyuan import hooks  # noqa: F401  (the plugin is installed with zoo)
    from zoo_registry.kernels.layers import adopt
    from zoo_registry.loading import quantize_model
    from zoo_registry.testing import random_model

    sys.path.insert(0, HERE)
    from checkpoints import COMMON

    model, _, _ = random_model({**COMMON, **CONFIG}, std=0.02)
    if fmt == "bf16":
        model.set_dtype(mx.bfloat16)
    elif fmt != "f32":
        quantize_model(model, int(fmt[1]), 64)
    adopt(model)
    mx.eval(model.parameters())
    return model


def speeds(model, prompt: int, steps: int):
    from mlx_lm.models.cache import make_prompt_cache

    ids = mx.array(np.random.default_rng(1).integers(3, V, prompt))[None]
    cache = make_prompt_cache(model)
    start = time.perf_counter()
    logits = model(ids, cache=cache)[:, -1, :]
    mx.eval(logits)
    prefill = prompt / (time.perf_counter() - start)
    tok = mx.argmax(logits, axis=-1)[:, None]
    for _ in range(2):
        tok = mx.argmax(model(tok, cache=cache)[:, -1, :], axis=-1)[:, None]
        mx.eval(tok)
    start = time.perf_counter()
    for _ in range(steps):
        tok = mx.argmax(model(tok, cache=cache)[:, -1, :], axis=-1)[:, None]
        mx.eval(tok)
    return prefill, steps / (time.perf_counter() - start)


def active_bytes(model) -> int:
    """Weight bytes one decode step reads: everything except the unused experts and the embedding table."""
    from mlx.utils import tree_flatten

    total = 0
    for name, p in tree_flatten(model.parameters()):
        if "switch_mlp" in name:
            total += p.nbytes * K_TOP // E
        elif "embed_tokens" in name and not name.endswith(("scales", "biases", "weight")):
            continue
        else:
            total += p.nbytes  # tied embedding = the LM head, read every step
    return total


def run_model(reps: int, prompt: int, steps: int, bandwidth: float) -> list:
    rows = []
    for fmt in ("q4", "q8", "bf16"):
        model = build_model(fmt)
        on_p, on_d, off_p, off_d = [], [], [], []
        for _ in range(reps):
            p, d = speeds(model, prompt, steps)
            on_p.append(p), on_d.append(d)
            with kernels.disabled():
                p, d = speeds(model, prompt, steps)
            off_p.append(p), off_d.append(d)
        mp, md, zp, zd = (statistics.median(v) for v in (off_p, off_d, on_p, on_d))
        bound = bandwidth / active_bytes(model)
        rows.append(f"| {fmt} | {mp:.1f} | {zp:.1f} | **{zp / mp:.1f}x** | {md:.1f} | {zd:.1f} | **{zd / md:.1f}x** | "
                    f"{bound:.0f} ({zd / bound:.0%}) |")
        del model
    return [f"| weights | prefill {prompt} off | on | ratio | decode off | on | ratio | bandwidth bound tok/s (decode on / bound) |",
            "|---|---|---|---|---|---|---|---|", *rows]


def run_matvec(reps: int, bandwidth: float) -> list:
    """Every one-row (decode) product kernel's weight bandwidth against the machine's read bandwidth.

    "cold": one product per ``eval`` on rotating copies of the weights (> 96 MB in all, more than the
    L3 cache), what a decode step sees; "hot": the same weights back to back (cache-resident if small)."""
    from zoo_registry.kernels import _ext as ext

    empty = timed(lambda: mx.zeros((1,)) + 1, 50)[0]
    rows = []
    for N, Kd in ((4096, D), (V, D)):
        w = mx.random.normal((N, Kd)) * 0.05
        x = mx.random.normal((1, Kd))
        for fmt in ("q4", "q8", "bf16", "f16", "f32"):
            if fmt[0] == "q":
                bits = int(fmt[1])
                one = mx.quantize(w, group_size=64, bits=bits)
                fn = lambda a, bits=bits: ext.qmm(x, a[0], a[1], a[2], 64, bits, stream=mx.cpu)  # noqa: E731
            elif fmt == "f32":
                one = (w,)
                fn = lambda a: ext.dense_mm(x, a[0], stream=mx.cpu)  # noqa: E731
            else:
                one = (w.astype(mx.bfloat16 if fmt == "bf16" else mx.float16),)
                fn = lambda a: ext.half_mm(x, a[0], stream=mx.cpu)  # noqa: E731
            nbytes = sum(a.nbytes for a in one)
            copies = [tuple(a + 0 for a in one)
                      for _ in range(max(1, (96 << 20) // nbytes + 1))]
            mx.eval(copies)
            hot = timed(lambda: fn(copies[0]), reps * 10)[0]
            it = iter(range(1 << 30))
            cold = timed(lambda: fn(copies[next(it) % len(copies)]), max(len(copies), reps * 10))[0]
            rows.append(f"| {fmt} {N}x{Kd} | {nbytes / 1e6:.2f} | {cold * 1e6:.0f} | {nbytes / cold / 1e9:.1f} "
                        f"({nbytes / cold / bandwidth:.0%}) | {hot * 1e6:.0f} | {nbytes / hot / 1e9:.1f} |")
            del copies
    return [f"One-row products (an empty eval takes {empty * 1e6:.0f} us, included below):", "",
            "| weights | MB | cold us | cold GB/s (of the read bandwidth) | hot us | hot GB/s |",
            "|---|---|---|---|---|---|", *rows]


def single_thread_bandwidth() -> float:
    a = np.ones(128 * 1024 * 1024 // 4 * 4, dtype=np.float32)  # 512 MB
    a.sum()
    best = min(timed_np(a) for _ in range(3))
    return a.nbytes / best


def timed_np(a) -> float:
    start = time.perf_counter()
    a.sum()
    return time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="ops,model")
    p.add_argument("--threads", default="1,2", help="kernel thread counts to measure (ZOO_THREADS)")
    p.add_argument("--compete", action="store_true", help="run one busy process alongside (a competing load)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--prompt", type=int, default=128)
    p.add_argument("--steps", type=int, default=32)
    args = p.parse_args(argv)
    st = kernels.status()
    if not st.available:
        print(f"zoo's kernels are not available: {st.reason}", file=sys.stderr)
        return 1
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.compete else None
    try:
        bw = single_thread_bandwidth()
        print(f"# zoo kernels vs MLX ops: {st.isa}, mlx {mx.__version__}, {blas.status().describe()}, "
              f"load average {os.getloadavg()[0]:.2f}, single-thread bandwidth {bw / 1e9:.1f} GB/s"
              + (", with one competing busy process" if busy else ""))
        for n in [int(t) for t in args.threads.split(",")]:
            kernels.set_threads(n)
            print(f"\n## {n} kernel thread{'s' if n > 1 else ''}\n")
            if "ops" in args.parts:
                print("\n".join(run_ops(args.reps)) + "\n")
            if "matvec" in args.parts:
                print("\n".join(run_matvec(args.reps, bw)) + "\n")
            if "model" in args.parts:
                print("\n".join(run_model(max(1, args.reps // 2), args.prompt, args.steps, bw)) + "\n")
            print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        if busy:
            busy.kill()
            busy.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
