"""What the main thread spends per decoded token: building the step's graph in Python (issue 15).

zoo decodes one token as a Python model call that builds an MLX graph, which MLX's stream thread
evaluates while the main thread builds the next one (mlx-lm's ``mx.async_eval`` pipelining). With
one kernel thread the build hides behind the evaluation; with two kernel threads on two cores the
main thread competes with them, so every millisecond of Python per token shows.

Per folder of the llama.cpp comparison's checkpoints (``benchmarks/llamacpp/build.py``'s cache),
after a 128-token prompt, medians over ``--tokens`` steps:

- ``build ms``: the model call plus ``argmax`` on the main thread (graph building only), wall time
  and the main thread's CPU time (``time.thread_time``), and the fastest step's wall time (what
  other processes on a busy machine disturb least: the figure to compare versions by);
- ``eval ms``: the blocking ``mx.eval`` of that step;
- ``nodes``: the step graph's nodes (``mx.export_to_dot``);
- ``gc``: CPython's cyclic collections during the decode steps (generation 0/1/2) and their time.

To compare two versions of zoo, run it once per version (``PYTHONPATH=<other checkout>:<its plugin>``)
in alternation:

    ZOO_THREADS=1 nice python benchmarks/decode_build.py --folders zoo-q4,zoo-q8,a13b-small --tokens 64
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "llamacpp"))


def nodes(out) -> int:
    """Nodes of the graph that computes ``out`` (``mx.export_to_dot``'s node lines)."""
    import mlx.core as mx

    buf = io.StringIO()
    mx.export_to_dot(buf, out)
    return sum(1 for line in buf.getvalue().splitlines() if "shape=rectangle" in line)


class GCTimer:
    """Counts and times CPython's cyclic collections while ``on``."""

    def __init__(self):
        self.count, self.seconds, self.on, self._t = [0, 0, 0], 0.0, False, 0.0
        gc.callbacks.append(self)

    def __call__(self, phase, info):
        if not self.on:
            return
        if phase == "start":
            self._t = time.perf_counter()
        else:
            self.count[info["generation"]] += 1
            self.seconds += time.perf_counter() - self._t


def measure(folder: str, dtype, tokens: int, timer: GCTimer) -> dict:
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    import zoo_registry

    loaded = zoo_registry.load_model(folder, **({"dtype": dtype} if dtype else {}))
    model = loaded[0] if isinstance(loaded, tuple) else loaded
    mx.eval(model.parameters())
    cache = make_prompt_cache(model)
    y = mx.argmax(model(mx.arange(10, 138)[None], cache=cache)[:, -1, :], axis=-1)
    mx.eval(y)
    step = lambda t: mx.argmax(model(t[:, None], cache=cache)[:, -1, :], axis=-1)  # noqa: E731
    n = nodes(step(y))
    for _ in range(4):  # warm-up
        y = step(y)
        mx.eval(y)
    builds, cpu, evals = [], [], []
    timer.count, timer.seconds, timer.on = [0, 0, 0], 0.0, True
    for _ in range(tokens):
        c0, t0 = time.thread_time(), time.perf_counter()
        nxt = step(y)
        t1, c1 = time.perf_counter(), time.thread_time()
        mx.eval(nxt)
        builds.append(t1 - t0)
        cpu.append(c1 - c0)
        evals.append(time.perf_counter() - t1)
        y = nxt
    timer.on = False
    return {"build": 1e3 * statistics.median(builds), "min": 1e3 * min(builds), "cpu": 1e3 * statistics.median(cpu), "eval": 1e3 * statistics.median(evals), "nodes": n,
            "gc": list(timer.count), "gc_ms": 1e3 * timer.seconds}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--folders", default="zoo-q4,zoo-q8,a13b-small", help="folders under the comparison's ckpt/ (a13b-small is float32)")
    p.add_argument("--dtypes", default="", help="with a13b-small: bfloat16,... (one more run per dtype)")
    p.add_argument("--tokens", type=int, default=64)
    args = p.parse_args()
    from zoo_registry.runtime import blas

    blas.activate()
    import build

    import zoo_registry

    ckpt = build.cache_dir() / "ckpt"
    runs = [(f, None) for f in args.folders.split(",") if f] + [("a13b-small", d) for d in args.dtypes.split(",") if d]
    timer = GCTimer()
    import zoo_hunyuan

    where = f"{Path(zoo_registry.__file__).parent}, {Path(zoo_hunyuan.__file__).parent}"
    print(f"zoo from {where}; ZOO_THREADS={os.environ.get('ZOO_THREADS', '(default)')}; "
          f"load average {os.getloadavg()[0]:.2f}; medians of {args.tokens} tokens")
    print("| weights | build ms/token wall (main thread CPU) | fastest build | eval ms/token | nodes per step | gc collections (gen 0/1/2) during decode, ms |")
    print("|---|---|---|---|---|")
    for folder, dtype in runs:
        r = measure(str(ckpt / folder), dtype, args.tokens, timer)
        print(f"| {dtype or folder} | {r['build']:.3f} ({r['cpu']:.3f}) | {r['min']:.3f} | {r['eval']:.3f} | {r['nodes']} | "
              f"{'/'.join(map(str, r['gc']))}, {r['gc_ms']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
