"""Two kernel tables (instruction sets) side by side in one process, alternating: the one-row
4-bit and 8-bit products, then whole decode steps of the llama.cpp comparison's checkpoints.

Why: the avx512bf16 table differs from avx512 only in its 4-bit matrix-vector kernel (bfloat16 dot
products, csrc/kern_q4bf16.inc); switching the table in one process (``set_isa``) between rounds
compares the two on the same weights, the same cache state and the same load, which separate
processes on a shared machine do not. Figures are minima (products) and medians (decode) over
alternating rounds, with the load average printed.

    nice python benchmarks/bench_isa.py --isas avx512,avx512bf16 --folders zoo-q4,zoo-q8
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


def products(isas, bits, rounds: int) -> list:
    import mlx.core as mx

    from zoo_registry import kernels

    ext = kernels._EXT
    rows = []
    # an A13B-shaped small model's attention/expert products and its tied head; several distinct
    # weights per evaluation so the figure is the product, not MLX's evaluation round trip
    for n, k, copies in [(512, 512, 32), (1536, 512, 16), (4096, 512, 8), (32000, 512, 2)]:
        ws = []
        for _ in range(copies):
            ws.append(mx.quantize(mx.random.normal((n, k)) * 0.05, group_size=64, bits=bits))
        x = mx.random.normal((1, k))
        mx.eval(ws, x)
        best = {i: float("inf") for i in isas}
        for _ in range(rounds):
            for isa in isas:
                ext.set_isa(isa)
                t = time.perf_counter()
                mx.eval([kernels.quantized_matmul(x, wq, s, b, 64, bits) for wq, s, b in ws])
                best[isa] = min(best[isa], (time.perf_counter() - t) / copies)
        rows.append((f"q{bits} {n}x{k}", {i: best[i] * 1e6 for i in isas}, n * k))
    return rows


def decode(folder: Path, isas, rounds: int, tokens: int) -> dict:
    """ms/token of decode_loop.py's bare pipelined loop (``argmax`` + ``async_eval``), per table."""
    import mlx.core as mx

    import zoo_registry
    from decode_loop import bare
    from zoo_registry import kernels

    ext = kernels._EXT
    model = zoo_registry.load_model(str(folder))
    model = model[0] if isinstance(model, tuple) else model
    mx.eval(model.parameters())
    ids = list(range(10, 138))
    times = {i: [] for i in isas}
    for _ in range(rounds):
        for isa in isas:
            ext.set_isa(isa)
            times[isa].append(bare(model, ids, tokens, pipelined=True)[0] * 1e3)
    return times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--isas", default="avx512,avx512bf16", help="two or more kernel tables (zoo load --json: kernels.isa)")
    p.add_argument("--folders", default="zoo-q4,zoo-q8", help="folders under the llama.cpp comparison's ckpt/")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--skip-products", action="store_true")
    args = p.parse_args()
    from zoo_registry import kernels
    from zoo_registry.runtime import blas

    blas.activate()
    if not kernels.available():
        print(f"zoo's CPU kernels are not built: {kernels.status().reason}")
        return 1
    import build

    isas = args.isas.split(",")
    print(f"kernel threads {kernels._EXT.threads()}; load average {os.getloadavg()[0]:.2f}\n")
    if not args.skip_products:
        print("| product, 1 row | " + " | ".join(f"{i} µs" for i in isas) + f" | {isas[0]} / {isas[-1]} | {isas[-1]} G weights/s |")
        print("|---|" + "---|" * (len(isas) + 2))
        for bits in (4, 8):
            for name, us, weights in products(isas, bits, args.rounds * 4):
                cells = " | ".join(f"{us[i]:.1f}" for i in isas)
                print(f"| {name} | {cells} | {us[isas[0]] / us[isas[-1]]:.2f}x | {weights / us[isas[-1]] / 1e3:.1f} |")
    print(f"\n| decode, ms/token (median of {args.rounds}; 128-token prompt, {args.tokens} tokens) | "
          + " | ".join(isas) + f" | {isas[0]} / {isas[-1]} |")
    print("|---|" + "---|" * (len(isas) + 1))
    for folder in args.folders.split(","):
        times = decode(build.cache_dir() / "ckpt" / folder, isas, args.rounds, args.tokens)
        med = {i: statistics.median(times[i]) for i in isas}
        print(f"| {folder} | " + " | ".join(f"{med[i]:.3f}" for i in isas) + f" | {med[isas[0]] / med[isas[-1]]:.2f}x |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
