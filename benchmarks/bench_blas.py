"""Which BLAS should MLX's CPU backend use? GEMM/GEMV speed and results per ``ZOO_BLAS`` choice.

Each measurement runs in a fresh process (a BLAS can only be chosen before ``mlx.core`` loads),
the choices alternate round by round, and the table shows medians. Shapes: the 512x1024x1024
prefill-like GEMM in both weight layouts (``x @ W`` and ``x @ W.T``, the ``nn.Linear`` one) and
M=1 products (decode, and every per-expert row of ``gather_mm``). Every choice must give the
bundled BLAS's result up to float32 rounding; the largest difference is printed.

    nice python benchmarks/bench_blas.py --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

SHAPES = [(512, 1024, 1024), (1, 1024, 4096), (1, 4096, 1024)]

CHILD = r"""
import json, sys, time
from zoo_registry.runtime import blas
status = blas.activate()
import numpy as np
import mlx.core as mx
out, results = {"blas": status.describe()}, {}
for M, K, N in json.loads(sys.argv[1]):
    a = mx.random.normal((M, K), key=mx.random.key(0)); w = mx.random.normal((K, N), key=mx.random.key(1))
    wt = mx.array(np.ascontiguousarray(np.array(w).T)); mx.eval(a, w, wt)
    for name, f in (("x@W", lambda: a @ w), ("x@W.T", lambda: a @ wt.T)):
        y = f(); mx.eval(y)
        reps = 5 if M > 1 else 200
        ts = []
        for _ in range(reps):
            t = time.perf_counter(); mx.eval(f()); ts.append(time.perf_counter() - t)
        out[f"{M}x{K}x{N} {name}"] = 2 * M * K * N / sorted(ts)[len(ts) // 2] / 1e9
        results[f"{M}x{K}x{N} {name}"] = np.array(y)
np.savez(sys.argv[2], **results)
print(json.dumps(out))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--choices", default="off,openblas,blis", help="ZOO_BLAS values; NAME@N also sets the thread count")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    choices = args.choices.split(",")
    runs = {c: [] for c in choices}
    tmp = tempfile.mkdtemp(prefix="zoo-bench-blas-")
    names = {}
    for r in range(args.rounds):
        for c in choices:
            mode, _, threads = c.partition("@")  # "blis@1": BLIS with BLIS_NUM_THREADS=1
            env = dict(os.environ, ZOO_BLAS=mode)
            if threads:
                env.update(BLIS_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads)
            proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(SHAPES), f"{tmp}/{c}.npz"], env=env, capture_output=True, text=True)
            if proc.returncode:
                print(f"{c}: {proc.stderr.strip().splitlines()[-1]}", file=sys.stderr)
                runs.pop(c, None)
                continue
            data = json.loads(proc.stdout.strip().splitlines()[-1])
            names[c] = data.pop("blas")
            runs[c].append(data)
    import numpy as np

    base = np.load(f"{tmp}/{choices[0]}.npz") if choices[0] in runs else None
    keys = list(next(iter(runs.values()))[0])
    print("| ZOO_BLAS | library | " + " | ".join(f"{k} GFLOP/s" for k in keys) + " | max rel. diff vs " + choices[0] + " |")
    print("|---" * (len(keys) + 3) + "|")
    for c, rs in runs.items():
        med = [statistics.median(r[k] for r in rs) for k in keys]
        diff = "-"
        if base is not None:
            other = np.load(f"{tmp}/{c}.npz")
            diff = f"{max(float(np.abs(other[k] - base[k]).max() / np.abs(base[k]).max()) for k in base.files):.1e}"
        print(f"| {c} | {names[c]} | " + " | ".join(f"{m:.1f}" for m in med) + f" | {diff} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
