"""Routed-expert SwiGLU on the CPU: ``gather_mm`` vs grouping tokens per expert, two weight layouts, bf16.

Same random weights and routing for every variant; each result is checked against the float32
``SwitchGLU`` output (max |diff| printed). Variants:

- ``gather_mm [E,out,in]``: mlx-lm's ``SwitchGLU`` (what zoo's float32 path runs); on the CPU it
  calls sgemm once per (token, expert) row, M=1;
- ``grouped [E,out,in]``: sort (token, slot) pairs by expert, one dense ``x @ W[e].T`` per expert
  (zoo's bf16 path, ``grouped_switch_glu``);
- ``grouped [E,in,out]``: the same with weights stored transposed once at load (``x @ W[e]``);
- ``grouped bf16->fp32``: bfloat16 weights kept in memory, each used expert upcast to float32
  right before its sgemm (BLAS speed at half the resident bytes);
- ``grouped bf16``: everything in bfloat16 (MLX's own bf16 matmul, no BLAS).

    nice python benchmarks/bench_moe.py --tokens 1,128,1024
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dims", type=int, default=1024)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--experts", type=int, default=16)
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--tokens", default="1,128,1024")
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()

    from zoo_registry.runtime import blas

    status = blas.activate()
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm.models.switch_layers import SwitchGLU

    D, I, E, k = args.dims, args.hidden, args.experts, args.top_k
    glu = SwitchGLU(D, I, E)
    mx.eval(glu.parameters())
    W = {n: getattr(glu, n).weight for n in ("gate_proj", "up_proj", "down_proj")}  # [E, out, in]
    WT = {n: mx.contiguous(w.swapaxes(1, 2)) for n, w in W.items()}  # [E, in, out]
    WB = {n: w.astype(mx.bfloat16) for n, w in W.items()}
    mx.eval(WT, WB)

    def grouped(x, inds, weights, transposed=False, upcast=False, dtype=mx.float32):
        T = x.shape[0]
        flat = inds.reshape(-1)  # [T*k]
        order = mx.argsort(flat)
        xs = x[order // k].astype(dtype)  # [T*k, D] rows in expert order
        counts = mx.zeros((E,), mx.int32).at[flat].add(1).tolist()
        outs, start = [], 0
        for e, n in enumerate(counts):
            if not n:
                continue
            xe = xs[start:start + n]

            def lin(name, v):
                w = weights[name][e]
                if upcast:
                    w = w.astype(mx.float32)
                return v @ w if transposed else v @ w.T

            h = nn.silu(lin("gate_proj", xe)) * lin("up_proj", xe)
            outs.append(lin("down_proj", h))
            start += n
        ys = mx.concatenate(outs)
        return ys[mx.argsort(order)].reshape(T, k, D).astype(mx.float32)

    variants = {
        "gather_mm [E,out,in] (fp32)": lambda x, i: glu(x, i),
        "grouped [E,out,in] (fp32)": lambda x, i: grouped(x, i, W),
        "grouped [E,in,out] (fp32)": lambda x, i: grouped(x, i, WT, transposed=True),
        "grouped bf16 weights, upcast per expert": lambda x, i: grouped(x, i, WB, upcast=True),
        "grouped bf16 (MLX bf16 matmul)": lambda x, i: grouped(x, i, WB, dtype=mx.bfloat16),
    }
    print(f"routed experts D={D} I={I} E={E} top-{k}; {status.describe()}")
    print("| tokens | variant | ms | tokens/s | max abs diff vs gather_mm |")
    print("|---|---|---|---|---|")
    for T in [int(t) for t in args.tokens.split(",")]:
        x = mx.random.normal((T, D), key=mx.random.key(T))
        inds = mx.argpartition(-mx.random.normal((T, E), key=mx.random.key(T + 1)), kth=k - 1, axis=-1)[:, :k].astype(mx.uint32)
        mx.eval(x, inds)
        ref = glu(x[None], inds[None])[0]  # [T, k, D]; SwitchGLU wants [B, L, D] with [B, L, k]
        mx.eval(ref)
        for name, fn in variants.items():
            if name.startswith("gather_mm"):
                f = lambda: fn(x[None], inds[None])
            else:
                f = lambda: fn(x, inds)
            y = f()
            mx.eval(y)
            ts = []
            for _ in range(args.reps if T > 1 else 10 * args.reps):
                t = time.perf_counter()
                mx.eval(f())
                ts.append(time.perf_counter() - t)
            ms = statistics.median(ts) * 1e3
            diff = float(mx.abs(y.reshape(ref.shape).astype(mx.float32) - ref).max())
            print(f"| {T} | {name} | {ms:.2f} | {T / ms * 1e3:.0f} | {diff:.2e} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
