"""Time one MoE block sharded tensor-parallel vs expert-parallel (zoo_registry.runtime.sharding).

Run it once per process count with the same arguments and compare the medians::

    python benchmarks/moe_sharding.py                                   # 1 process: baseline
    mlx.launch --backend ring -n 2 --python "$(which python)" benchmarks/moe_sharding.py

Two shapes, scaled down from the real models so the weights fit a laptop while keeping their
routing: ``large`` is HunYuan-Large's 16 experts, top-1, plus a shared MLP of the same width;
``a13b`` is Hunyuan-A13B's 64 experts, top-8, plus a shared MLP. float32 (MLX's CPU ``gather_mm``
needs it). Each cell is the median and the minimum wall time of one block call, in milliseconds, for a decode step
(1 token) and a prefill (``--prefill`` tokens), with the inputs drawn from a fixed seed, so the
expert choices are the same in every run. Rank 0 prints one line per (shape, strategy, tokens).
"""

from __future__ import annotations

import argparse
import statistics
import time

import mlx.core as mx

from zoo_registry import distributed
from zoo_registry.runtime.moe import MoE, route
from zoo_registry.runtime.sharding import shard_moe

SHAPES = {
    # name: (dims, expert hidden, experts, top_k, shared hidden)
    "large": (1536, 1536, 16, 1, 1536),
    "a13b": (1536, 384, 64, 8, 384),
}


def build(name: str) -> MoE:
    D, I, E, k, S = SHAPES[name]
    mx.random.seed(0)
    moe = MoE(D, I, E, k, S)
    mx.eval(moe.parameters())
    return moe


def time_call(moe: MoE, x: mx.array, repeats: int):
    """(median, min) wall time of one call in ms; the min is the figure least hurt by a busy host."""
    mx.eval(moe(x))  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        mx.eval(moe(x))
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times), 1e3 * min(times)


def critical_path(moe: MoE, x: mx.array, N: int):
    """Expert-weight bytes the busiest rank reads per call, as a fraction of one process's reads.

    Deterministic (from the router's actual choices on ``x``), so it holds on a busy host where
    timings do not. tensor: every rank reads ``1/N`` of each selected expert. expert: rank ``r``
    reads every selected expert it owns in full; the call waits for the busiest rank.
    """
    inds, _ = route(moe.gate(x), moe.top_k)
    chosen = sorted(set(inds.reshape(-1).tolist()))  # distinct experts touched by the call
    per_rank = moe.num_experts // N
    owned = [sum(1 for e in chosen if e // per_rank == r) for r in range(N)]
    return 1.0 / N, max(owned) / len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prefill", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=25, help="timed calls per decode cell (prefill: a fifth)")
    args = parser.parse_args()
    group = distributed.world()
    N = 1 if group is None else group.size()
    if group is None:  # routing balance, for 2, 4 and 8 ranks
        for name in SHAPES:
            moe = build(name)
            for tokens in (1, args.prefill):
                mx.random.seed(1)
                x = mx.random.normal((1, tokens, SHAPES[name][0]))
                cells = []
                for n in (2, 4, 8):
                    tp, ep = critical_path(moe, x, n)
                    cells.append(f"N={n}: tensor {tp:.3f} expert {ep:.3f}")
                print(f"{name:6s} tokens={tokens:4d} busiest-rank expert reads  " + "  ".join(cells), flush=True)
    strategies = ["none"] if group is None else ["tensor", "expert"]
    for name in SHAPES:
        for strategy in strategies:
            moe = build(name)
            if group is not None:
                shard_moe(moe, group, strategy=strategy)
                mx.eval(moe.parameters())
            for tokens in (1, args.prefill):
                mx.random.seed(1)
                x = mx.random.normal((1, tokens, SHAPES[name][0]))
                med, best = time_call(moe, x, args.repeats if tokens == 1 else max(3, args.repeats // 5))
                if distributed.is_primary():
                    print(f"{name:6s} ranks={N} strategy={strategy:6s} tokens={tokens:4d} median {med:9.2f} ms  min {best:9.2f} ms", flush=True)
            del moe
            mx.clear_cache()


if __name__ == "__main__":
    main()
