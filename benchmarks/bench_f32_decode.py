"""Each float32 product of one decode step, from memory, against what one core can read (issue 15).

A decode token of the A13B-shaped small model reads ~212 MB of float32 weights, far more than the
32 MB L3 cache, so each product reads its weights from memory. Here each product kind of a step
(the attention projections, the fused MoE block at one token, the tied LM head) is evaluated as
one MLX graph of many such products on distinct weights (copies, > 128 MB in all; the MoE blocks
of all 8 layers), so the weights come from memory as in a decode step and one ``mx.eval`` round
trip is shared: per product, wall µs (including MLX's dispatch of its node, as in a step), weight
MB and GB/s. Kinds alternate, medians of ``--reps``. The bound beside it is
``bench_read_probe.py``'s four streams prefetched 1 KB ahead on 4 KB pages (what MLX's buffers
get here), measured in the same process; "empty node" is the dispatch of a trivial op.

    nice python benchmarks/bench_f32_decode.py [--folder <checkpoint>] [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from zoo_registry.runtime import blas  # noqa: E402

blas.activate()

import mlx.core as mx  # noqa: E402

import bench_read_probe as probe  # noqa: E402

DEFAULT = os.path.expanduser("~/.cache/zoo-bench/llamacpp/ckpt/a13b-small")


def kinds(model, x):
    """(name, weight MB per product, [MLX arrays to evaluate together]) for each float32 product kind."""
    from zoo_registry import kernels

    dense = kernels._EXT.dense_mm
    layers = model.model.layers
    out = []

    def copies(w, total=128 << 20):
        cs = [w + 0 for _ in range(-(-total // w.nbytes))]
        mx.eval(cs)
        return cs

    for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
        w = getattr(layers[0].self_attn, proj).weight
        cs = copies(w)
        out.append((f"attention {proj} {w.shape[0]}x{w.shape[1]}", w.nbytes, lambda cs=cs: [dense(x, c) for c in cs]))
    mlp = layers[0].mlp
    sw = mlp.switch_mlp
    per_unit = sum(getattr(sw, p).weight.nbytes // getattr(sw, p).weight.shape[0] for p in ("gate_proj", "up_proj", "down_proj"))
    shared = sum(getattr(mlp.shared_mlp, p).weight.nbytes for p in ("gate_proj", "up_proj", "down_proj"))
    out.append((f"MoE block, 1 token (top-{mlp.top_k} + shared)", mlp.top_k * per_unit + shared + mlp.gate.wg.weight.nbytes,
                lambda: [lay.mlp(x[None]) for lay in layers]))
    head = model.model.embed_tokens.weight
    cs = copies(head)
    out.append((f"LM head (tied) {head.shape[0]}x{head.shape[1]}", head.nbytes, lambda cs=cs: [dense(x, c) for c in cs]))
    out.append(("empty node (x + 1)", 0, lambda: [x + i for i in range(256)]))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", default=DEFAULT)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args(argv)
    import zoo_registry
    from zoo_registry import kernels

    loaded = zoo_registry.load_model(args.folder)
    model = loaded[0] if isinstance(loaded, tuple) else loaded
    mx.eval(model.parameters())
    x = mx.random.normal((1, model.model.embed_tokens.weight.shape[1]))
    table = kinds(model, x)
    with tempfile.TemporaryDirectory() as tmp:
        lib = probe.build(tmp)
        addr, _, _ = probe.buffer(False)
        times = {name: [] for name, _, _ in table}
        bound = []
        load0 = os.getloadavg()[0]
        for _ in range(args.reps):
            for name, _, fn in table:
                outs = fn()
                start = time.perf_counter()
                mx.eval(outs)
                times[name].append((time.perf_counter() - start) / len(outs))
            start = time.perf_counter()
            lib.read_probe(addr, probe.SIZE // 4, 4, 1024, 0)
            bound.append(probe.SIZE / (time.perf_counter() - start) / 1e9)
        bw = statistics.median(bound)
        print(f"# float32 products of one decode step, weights from memory; {kernels.status().describe()}; "
              f"load average {load0:.2f} -> {os.getloadavg()[0]:.2f}; one core's read bound (4 streams, "
              f"prefetch 1 KB, 4 KB pages) {bw:.1f} GB/s\n")
        print("| product | MB | us per product | GB/s | of the bound |")
        print("|---|---|---|---|---|")
        for name, nbytes, _ in table:
            t = statistics.median(times[name])
            gbs = nbytes / t / 1e9
            print(f"| {name} | {nbytes / 1e6:.2f} | {t * 1e6:.1f} | {gbs:.1f} | {gbs / bw:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
