"""zoo with and without its fused feed-forward block, against llama.cpp, alternating in one run.

For each rep and dtype: ``zoo generate`` with the fused block (``runtime.fused``), the same with
``ZOO_FUSED=off`` (zoo's CPU kernels product by product, as before it), then ``llama-bench`` on
the matching GGUF; one process per run, the 1-minute load average read before each, medians of
the reps. Uses :mod:`bench`'s runners, checkpoint and GGUF files (run ``bench.py`` once first).

    nice python benchmarks/llamacpp/fused_ab.py --reps 3 --threads 1 --dtypes q4,q8,bf16,f32
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dtypes", default="q4,q8,bf16,f32")
    p.add_argument("--tokens", type=int, default=128)
    args = p.parse_args()
    cache = bench.build.cache_dir()
    bins = bench.build.binaries()
    ckpt = cache / "ckpt" / "a13b-small"
    ggufs = {k: cache / "gguf" / f"a13b-small-{k}.gguf" for k in bench.GGUF_OF.values()}
    missing = [str(g) for g in ggufs.values() if not g.exists()]
    if missing:
        sys.exit(f"missing GGUF files (run benchmarks/llamacpp/bench.py once): {missing}")
    folders = {"q4": cache / "ckpt" / "zoo-q4", "q8": cache / "ckpt" / "zoo-q8"}
    prompt = (ckpt / "prompt_128.txt").read_text()
    runs = {}  # (dtype, side) -> [(prefill, decode, load)]
    for rep in range(args.reps):
        for d in args.dtypes.split(","):
            dtype = "bfloat16" if d == "bf16" else None
            for side, env in (("fused", "on"), ("unfused", "off")):
                os.environ["ZOO_FUSED"] = env
                load = os.getloadavg()[0]
                r = bench.run_zoo(folders.get(d, ckpt), prompt, args.tokens, args.threads, dtype)
                runs.setdefault((d, side), []).append((r["prefill"], r["decode"], load))
            load = os.getloadavg()[0]
            r = bench.run_llama_bench(bins["llama-bench"], ggufs[bench.GGUF_OF[d]], 128, args.tokens, [args.threads], 0)
            runs.setdefault((d, "llama.cpp"), []).append((r[args.threads]["prefill"], r[args.threads]["decode"], load))
            print(f"rep {rep + 1} {d}: " + ", ".join(f"{s} {runs[(d, s)][-1][0]:.0f}/{runs[(d, s)][-1][1]:.1f}"
                                                    for s in ("fused", "unfused", "llama.cpp")), file=sys.stderr)
    os.environ.pop("ZOO_FUSED", None)
    med = lambda d, s, i: statistics.median(r[i] for r in runs[(d, s)])  # noqa: E731
    print(f"{args.threads} thread(s), medians of {args.reps} alternating reps, tokens/s (prefill 128 / decode {args.tokens})\n")
    print("| dtype | zoo fused prefill / decode | zoo unfused prefill / decode | llama.cpp prefill / decode | "
          "fused / llama.cpp prefill, decode | unfused / llama.cpp prefill, decode | load avg (min-max) |")
    print("|---|---|---|---|---|---|---|")
    for d in args.dtypes.split(","):
        f, u, l = ((med(d, s, 0), med(d, s, 1)) for s in ("fused", "unfused", "llama.cpp"))
        loads = [r[2] for s in ("fused", "unfused", "llama.cpp") for r in runs[(d, s)]]
        print(f"| {d} | {f[0]:.0f} / {f[1]:.1f} | {u[0]:.0f} / {u[1]:.1f} | {l[0]:.0f} / {l[1]:.1f} | "
              f"{f[0] / l[0]:.2f}x, {f[1] / l[1]:.2f}x | {u[0] / l[0]:.2f}x, {u[1] / l[1]:.2f}x | "
              f"{min(loads):.1f}-{max(loads):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
