"""Does zoo's generation loop cost time per token? (issue 15: one profile said ~4 ms/token, another noise.)

In one process, on the llama.cpp comparison's checkpoint (``benchmarks/llamacpp/build.py``'s cache),
alternating, medians of ``--reps``, decode ms/token after the same prompt:

- ``zoo loop``: ``chat.loop.steps`` (what ``zoo generate`` runs: mlx-lm's ``stream_generate``
  with zoo's sampler, stop matcher, splitter; eos ignored by the random model only by chance);
- ``bare async``: ``model(tok, cache)``, ``argmax``, ``mx.async_eval`` of the next token before
  reading this one (mlx-lm's pipelining, nothing else);
- ``bare sync``: the same with a blocking ``mx.eval`` per token.

    nice python benchmarks/decode_loop.py --folders zoo-q4,zoo-q8 --tokens 64 --reps 3
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


def bare(model, ids, tokens: int, pipelined: bool):
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    step = lambda t: mx.argmax(model(t[:, None], cache=cache)[:, -1, :], axis=-1)  # noqa: E731
    y = mx.argmax(model(mx.array(ids)[None], cache=cache)[:, -1, :], axis=-1)
    mx.eval(y)
    y = step(y)
    mx.eval(y)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(tokens):
        nxt = step(y)
        if pipelined:
            mx.async_eval(nxt)
            y.item()
        else:
            mx.eval(nxt)
        y = nxt
    y.item()
    return (time.perf_counter() - start) / tokens, (time.process_time() - cpu) / tokens


def zoo_loop(gen, ids, text: str, tokens: int):
    """``zoo generate``'s loop (``chat.loop.steps``), timed from its 2nd token to its last."""
    from zoo_registry.chat.formats import make_splitter
    from zoo_registry.chat.loop import steps

    n, start, cpu = 0, None, None
    for st in steps(gen.model, gen.tokenizer, ids, splitter=make_splitter(gen.output_format, text),
                    sampling=gen.sampling(temperature=0.0), max_tokens=tokens + 1):
        if st.final:
            break
        if start is None:
            start, cpu = time.perf_counter(), time.process_time()
        else:
            n += 1
    return (time.perf_counter() - start) / n, (time.process_time() - cpu) / n


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--folders", default="zoo-q4", help="folders under the comparison's ckpt/ (a13b-small is float32)")
    p.add_argument("--dtypes", default="", help="with a13b-small: float32,bfloat16 (one run per dtype)")
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    from zoo_registry.runtime import blas

    blas.activate()
    import build

    from zoo_registry.chat.generate import TextGenerator

    ckpt = build.cache_dir() / "ckpt"
    text = (ckpt / "a13b-small" / "prompt_128.txt").read_text()
    runs = [(f, None) for f in args.folders.split(",") if f]
    runs += [("a13b-small", d) for d in args.dtypes.split(",") if d]
    print(f"load average {os.getloadavg()[0]:.2f}; {args.tokens} tokens, medians of {args.reps} alternating reps")
    print("| weights | zoo loop ms/token wall (CPU) | bare async | bare sync | zoo loop - bare async, wall (CPU) |")
    print("|---|---|---|---|---|")
    for folder, dtype in runs:
        gen = TextGenerator.load(str(ckpt / folder), **({"dtype": dtype} if dtype else {}))
        ids = gen.tokenizer.encode(text)
        zoo_loop(gen, ids, text, 8)  # warm-up
        t = {"zoo": [], "async": [], "sync": []}
        for _ in range(args.reps):
            t["zoo"].append(zoo_loop(gen, ids, text, args.tokens))
            t["async"].append(bare(gen.model, ids, args.tokens, True))
            t["sync"].append(bare(gen.model, ids, args.tokens, False))
        m = {k: (1e3 * statistics.median(w for w, _ in v), 1e3 * statistics.median(c for _, c in v)) for k, v in t.items()}
        f = lambda k: f"{m[k][0]:.2f} ({m[k][1]:.2f})"  # noqa: E731
        print(f"| {dtype or folder} | {f('zoo')} | {f('async')} | {f('sync')} | "
              f"{m['zoo'][0] - m['async'][0]:+.2f} ({m['zoo'][1] - m['async'][1]:+.2f}) |", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
