"""The pip-only BLAS choice: MLX's bundled reference BLAS vs Intel MKL from PyPI vs Debian's BLIS.

For each ``ZOO_BLAS`` choice, in a fresh process each (a BLAS is chosen before ``mlx.core`` loads),
alternating round by round, quiet and under contention (a second process spinning on one core for
the whole run): the float32 1024x1024x1024 ``sgemm`` through MLX (GFLOP/s, median of 5 after a
warm-up) and ``zoo generate`` on a model (prefill of its 128-token prompt, decode of 128 tokens).
``mkl`` is the provider's own choice (sequential layer); ``mkl@gnu`` / ``mkl@intel`` force MKL's
threaded layers (``MKL_THREADING_LAYER``) to show why zoo does not use them. Each row also says
what zoo reported (library, layer, which file MLX's ``cblas_sgemm`` is bound to) and the 1-minute
load average before the run.

    nice python benchmarks/bench_pip_blas.py --model ~/.cache/zoo-bench/llamacpp/ckpt/a13b-small --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

GEMM = r"""
import json, time
from zoo_registry.runtime import blas
blas.activate()
import mlx.core as mx
n = 1024
a = mx.random.normal((n, n), key=mx.random.key(0)); b = mx.random.normal((n, n), key=mx.random.key(1))
mx.eval(a, b)
with mx.stream(mx.cpu):
    mx.eval(a @ b)
    times = []
    for _ in range(5):
        t = time.perf_counter(); mx.eval(a @ b); times.append(time.perf_counter() - t)
times.sort()
s = blas.status()
print(json.dumps({"gflops": 2 * n ** 3 / times[2] / 1e9, "blas": s.describe(), "bound": s.bound, "threading": s.threading}))
"""


def env_for(choice: str) -> dict:
    mode, _, layer = choice.partition("@")
    env = dict(os.environ, ZOO_BLAS=mode)
    env.pop("MKL_THREADING_LAYER", None)
    if layer:
        env["MKL_THREADING_LAYER"] = layer.upper()
    return env


def run(choice: str, model: Path, prompt: str, tokens: int) -> dict:
    env = env_for(choice)
    load = os.getloadavg()[0]
    g = subprocess.run([sys.executable, "-c", GEMM], env=env, capture_output=True, text=True)
    if g.returncode:
        return {"choice": choice, "error": g.stderr.strip().splitlines()[-1]}
    rec = {"choice": choice, "load": load, **json.loads(g.stdout.strip().splitlines()[-1])}
    z = subprocess.run([sys.executable, "-m", "zoo_registry.cli.main", "generate", str(model), "--prompt", prompt,
                        "--max-tokens", str(tokens), "--no-chat-template", "--json"], env=env, capture_output=True, text=True)
    if z.returncode:
        return {**rec, "error": z.stderr.strip()[-300:]}
    out = json.loads(z.stdout[z.stdout.index("{"):])
    rec.update(prefill=out["prompt_tps"], decode=out["generation_tps"], prompt_tokens=out["prompt_tokens"])
    return rec


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True, help="a checkpoint folder with prompt_128.txt (benchmarks/llamacpp/checkpoint.py)")
    p.add_argument("--choices", default="off,blis,mkl,mkl@gnu")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--jsonl", type=Path, help="append every run here")
    args = p.parse_args()
    prompt = (args.model / "prompt_128.txt").read_text()
    records = []
    for r in range(args.rounds):
        for contended in (False, True):
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if contended else None
            try:
                for choice in args.choices.split(","):
                    rec = {**run(choice, args.model, prompt, args.tokens), "contended": contended, "round": r}
                    records.append(rec)
                    print(json.dumps(rec), file=sys.stderr)
                    if args.jsonl:
                        with open(args.jsonl, "a") as f:
                            f.write(json.dumps(rec) + "\n")
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
    print("| ZOO_BLAS | contention | zoo reports | 1024^3 sgemm GFLOP/s | prefill 128 tok/s | decode tok/s | load avg (median, min-max) |")
    print("|---|---|---|---|---|---|---|")
    for contended in (False, True):
        for choice in args.choices.split(","):
            rows = [x for x in records if x["choice"] == choice and x["contended"] == contended and "error" not in x]
            if not rows:
                err = next((x.get("error") for x in records if x["choice"] == choice), "no runs")
                print(f"| {choice} | {'1 core busy' if contended else 'none added'} | error: {err} | | | | |")
                continue
            m = {k: statistics.median(x[k] for x in rows) for k in ("gflops", "prefill", "decode")}
            loads = [x["load"] for x in rows]
            shown = rows[0]["blas"].removeprefix("BLAS: ")
            print(f"| {choice} | {'1 core busy' if contended else 'none added'} | {shown} | {m['gflops']:.1f} | {m['prefill']:.0f} | "
                  f"{m['decode']:.1f} | {statistics.median(loads):.2f} ({min(loads):.2f}-{max(loads):.2f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
