"""A whole decode step with zoo's decode-step kernels on and off, in one process (issue 15).

The step ops (``zoo_registry.kernels.step``: RMSNorm, attention heads with RoPE and QK-norm,
attention, the quantized embedding lookup, float32 one-row products) against MLX's own ops
(``kernels.step.disabled()``; the matmul kernels stay on in both, so the difference is the step
ops alone), on the llama.cpp comparison's A13B-shaped checkpoint (``benchmarks/llamacpp``: hidden
512, 8 layers, 16 experts top-4 + shared expert, vocab 32000; float32, bfloat16, zoo's 4-bit and
8-bit folders). Per dtype, in alternation, medians of ``--reps``:

- graph nodes of one decode step (``mx.export_to_dot`` of the step's output);
- prefill of the 128-token prompt (tok/s);
- greedy decode as mlx-lm's ``generate_step`` runs it (the next step built while the current one
  evaluates, ``mx.async_eval``): wall ms per token and the process's CPU ms per token (user +
  system of all its threads; less sensitive than wall time to other jobs on a shared machine).

    python benchmarks/bench_step.py [--dtypes f32,bf16,q8,q4] [--tokens 48] [--reps 3] [--threads 1]

Needs the checkpoint folders of ``benchmarks/llamacpp/bench.py`` (built there on first use).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "llamacpp"))

from zoo_registry.runtime import blas  # noqa: E402

BLAS = blas.activate()  # before mlx.core: the BLAS zoo runs with

import mlx.core as mx  # noqa: E402
from mlx_lm.models.cache import make_prompt_cache  # noqa: E402

import build  # noqa: E402
import zoo_registry  # noqa: E402
from zoo_registry import kernels  # noqa: E402
from zoo_registry.kernels import step  # noqa: E402


def folders() -> dict:
    ckpt = build.cache_dir() / "ckpt"
    return {"f32": (ckpt / "a13b-small", None), "bf16": (ckpt / "a13b-small", "bfloat16"),
            "q8": (ckpt / "zoo-q8", None), "q4": (ckpt / "zoo-q4", None)}


def nodes(model, prompt) -> int:
    """Graph nodes of one decode step after the prompt."""
    cache = make_prompt_cache(model)
    mx.eval(model(prompt, cache=cache))
    out = mx.argmax(model(mx.array([[5]]), cache=cache)[:, -1], axis=-1)
    dot = io.StringIO()
    mx.export_to_dot(dot, out)
    return len(re.findall(r"shape=rectangle", dot.getvalue()))


def run(model, prompt, tokens: int):
    """(prefill tok/s, wall s/token, CPU s/token) of one prompt + greedy decode."""
    cache = make_prompt_cache(model)
    t = time.perf_counter()
    mx.eval(model(prompt, cache=cache))
    prefill = prompt.shape[1] / (time.perf_counter() - t)

    def next_token(tok):
        return mx.argmax(model(tok, cache=cache)[:, -1], axis=-1)[:, None]

    y = next_token(mx.array([[5]]))
    mx.async_eval(y)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(tokens):
        nxt = next_token(y)
        mx.async_eval(nxt)
        y.item()
        y = nxt
    return prefill, (time.perf_counter() - wall) / tokens, (time.process_time() - cpu) / tokens


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dtypes", default="f32,bf16,q8,q4")
    p.add_argument("--tokens", type=int, default=48)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="kernel threads (ZOO_THREADS)")
    args = p.parse_args()
    kernels.set_threads(args.threads)
    st = kernels.status()
    print(f"{BLAS.describe()}; {st.describe()}; load average {os.getloadavg()[0]:.1f}")
    from tokenizers import Tokenizer

    ckpt = folders()["f32"][0]
    ids = Tokenizer.from_file(str(ckpt / "tokenizer.json")).encode((ckpt / "prompt_128.txt").read_text()).ids
    prompt = mx.array(ids[:128])[None]
    print("\n| weights | step ops | nodes per decode step | prefill 128 tok/s | decode ms/token (wall) | decode CPU ms/token | load |")
    print("|---|---|---|---|---|---|---|")
    for d in args.dtypes.split(","):
        folder, dtype = folders()[d]
        model = zoo_registry.load_model(str(folder), dtype=dtype)
        mx.eval(model.parameters())
        res = {"on": [], "off": []}
        count = {"on": nodes(model, prompt)}
        with step.disabled():
            count["off"] = nodes(model, prompt)
            run(model, prompt, 4)
        run(model, prompt, 4)
        loads = []
        for _ in range(args.reps):
            with step.disabled():
                res["off"].append(run(model, prompt, args.tokens))
            res["on"].append(run(model, prompt, args.tokens))
            loads.append(os.getloadavg()[0])
        for side in ("off", "on"):
            pre, wall, cpu = (statistics.median(r[i] for r in res[side]) for i in range(3))
            print(f"| {d} | {side} | {count[side]} | {pre:.0f} | {wall * 1e3:.2f} | {cpu * 1e3:.2f} | "
                  f"{min(loads):.1f}-{max(loads):.1f} |", flush=True)
        del model
    return 0


if __name__ == "__main__":
    sys.exit(main())
