"""zoo vs mlx-lm vs transformers on the CPU, for the two HunYuan configs of the performance issue.

Two modes:

- **like for like** (``--mode like``): one process per config; zoo, mlx-lm's ``hunyuan`` and
  transformers' ``HunYuanMoEV1ForCausalLM`` load the same weights from disk and are measured in
  alternation (rep 1 of each, then rep 2 of each, ...), with the same driver loop: prefill that
  computes only the last position's logits, then greedy decode with one ``eval`` per token. MLX
  runs on whatever BLAS ``ZOO_BLAS`` gives the process (zoo's provider is activated before MLX
  loads, so mlx-lm gets it too).
- **as users get them** (``--mode users``): separate processes, each tool as installed:
  ``zoo generate`` (with zoo's BLAS provider), ``mlx_lm.generate`` (MLX's bundled BLAS unless the
  environment preloads another) and ``benchmarks/hf_generate.py`` (transformers ``generate``).

Measured: prefill tok/s at 128 and 1024 tokens, decode tok/s over 128 tokens (after a 128-token
prompt), KV-cache bytes after the 1024-token prompt, peak memory, load time; ratios to mlx-lm and
torch; the fraction of the decode bandwidth bound (active weight bytes per token / 21 GB/s, the
single-thread streaming rate measured on this machine). mlx-lm cannot run bfloat16 on the CPU
(``GatherMM`` is float32 only): its bf16 cells say so.

Usage::

    nice python benchmarks/bench_hunyuan.py --quick            # smoke run, a minute or two
    nice python benchmarks/bench_hunyuan.py --mode both         # the full run, writes RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import checkpoints  # noqa: E402

from bench_report import IMPLS, MLX_LM_BF16, like_table, machine, users_table, zoo_cli_blas  # noqa: E402,F401


# ----------------------------------------------------------------------------- like for like


def _mlx_last_logits(model, ids, cache):
    import mlx.core as mx

    h = model.model(ids, cache)  # [1, L, D]
    head = model.model.embed_tokens.as_linear if getattr(model, "lm_head", None) is None else model.lm_head
    return head(h[:, -1:, :]).astype(mx.float32)  # [1, 1, V]


class MlxRunner:
    """Drives a zoo or mlx-lm model: prefill (last logits only), greedy decode, KV bytes."""

    def __init__(self, model):
        self.model = model

    def prefill(self, ids):
        import mlx.core as mx
        from mlx_lm.models.cache import make_prompt_cache

        cache = make_prompt_cache(self.model)
        start = time.perf_counter()
        logits = _mlx_last_logits(self.model, mx.array(ids)[None], cache)
        mx.eval(logits)
        return time.perf_counter() - start, cache, logits

    def decode(self, ids, steps):
        import mlx.core as mx

        _, cache, logits = self.prefill(ids)
        tok = mx.argmax(logits[:, -1, :], axis=-1)[:, None]
        for _ in range(2):  # warm-up steps, untimed
            tok = mx.argmax(self.model(tok, cache=cache)[:, -1, :], axis=-1)[:, None]
            mx.eval(tok)
        start = time.perf_counter()
        for _ in range(steps):
            tok = mx.argmax(self.model(tok, cache=cache)[:, -1, :], axis=-1)[:, None]
            mx.eval(tok)
        return steps / (time.perf_counter() - start)

    def kv_and_peak(self, ids):
        import mlx.core as mx

        mx.eval(self.model.parameters())
        before = mx.get_active_memory()
        mx.reset_peak_memory()
        _, cache, _ = self.prefill(ids)
        peak = mx.get_peak_memory() - before
        return sum(c.nbytes for c in cache), peak

    def weight_bytes(self):
        from mlx.utils import tree_flatten

        return sum(v.nbytes for _, v in tree_flatten(self.model.parameters()))


class TorchRunner:
    """The same protocol for transformers (``logits_to_keep=1`` on prefill, manual greedy loop)."""

    def __init__(self, model):
        self.model = model

    def prefill(self, ids):
        import torch
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        with torch.inference_mode():
            start = time.perf_counter()
            out = self.model(torch.as_tensor(ids)[None], cache=cache, use_cache=True, logits_to_keep=1)
            return time.perf_counter() - start, cache, out.logits

    def decode(self, ids, steps):
        import torch

        _, cache, logits = self.prefill(ids)
        with torch.inference_mode():
            tok = logits[:, -1].argmax(-1, keepdim=True)
            for _ in range(2):
                tok = self.model(tok, cache=cache, use_cache=True).logits[:, -1].argmax(-1, keepdim=True)
            start = time.perf_counter()
            for _ in range(steps):
                tok = self.model(tok, cache=cache, use_cache=True).logits[:, -1].argmax(-1, keepdim=True)
            return steps / (time.perf_counter() - start)

    def kv_and_peak(self, ids):
        _, cache, _ = self.prefill(ids)
        total = 0
        for layer in getattr(cache, "layers", []):
            for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
                if t is not None:
                    total += t.numel() * t.element_size()
        return total, None  # torch has no CPU peak-allocation counter; see the users mode's max RSS

    def weight_bytes(self):
        seen, total = set(), 0
        for p in self.model.parameters():
            if p.data_ptr() not in seen:
                seen.add(p.data_ptr())
                total += p.numel() * p.element_size()
        return total


def like_worker(args) -> dict:
    """One config, all dtypes, all implementations; prints one JSON object."""
    from zoo_registry.runtime import blas

    blas_status = blas.activate()  # before MLX loads: the provider serves zoo and mlx-lm alike
    import mlx.core as mx
    import numpy as np
    from mlx.utils import tree_flatten
    from mlx_lm.utils import load_model as mlx_lm_load

    import zoo_registry

    size, root = args.size, Path(args.workdir)
    folder = checkpoints.write_hf(root / size, size)
    ids_long = checkpoints.prompt_ids(args.long)
    ids_short = ids_long[: args.short]
    result = {"size": size, "blas": blas_status.describe(), "load_s": {}, "rows": {}, "checks": {}}

    start = time.perf_counter()
    zoo = zoo_registry.load_model(str(folder))
    zoo = zoo[0] if isinstance(zoo, tuple) else zoo
    result["load_s"]["zoo"] = time.perf_counter() - start
    start = time.perf_counter()
    ref, _ = mlx_lm_load(folder)
    mx.eval(ref.parameters())
    result["load_s"]["mlx-lm"] = time.perf_counter() - start

    zp, rp = dict(tree_flatten(zoo.parameters())), dict(tree_flatten(ref.parameters()))
    same = sorted(zp) == sorted(rp) and all(mx.array_equal(zp[k], rp[k]).item() for k in zp)
    result["checks"]["zoo and mlx-lm hold identical parameters"] = bool(same)
    probe = checkpoints.prompt_ids(16, seed=7)
    z = np.array(zoo(mx.array(probe)[None]).astype(mx.float32))
    r = np.array(ref(mx.array(probe)[None]).astype(mx.float32))
    result["checks"]["max|logits zoo - mlx-lm| (16 tokens)"] = float(np.abs(z - r).max())

    runners = {"zoo": MlxRunner(zoo), "mlx-lm": MlxRunner(ref)}
    torch_model = None
    if not args.no_torch:
        import torch
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(os.cpu_count() or 1)
        tf_folder = checkpoints.write_tf(root / f"{size}-tf", size)
        start = time.perf_counter()
        torch_model = AutoModelForCausalLM.from_pretrained(tf_folder, dtype=torch.float32).eval()
        result["load_s"]["torch"] = time.perf_counter() - start
        runners["torch"] = TorchRunner(torch_model)
        with torch.inference_mode():
            t = torch_model(torch.as_tensor(probe)[None]).logits.float().numpy()
        result["checks"]["max|logits zoo - transformers| (16 tokens)"] = float(np.abs(z - t).max())

    for dtype in args.dtypes:
        if dtype == "bfloat16":
            zoo_bf = zoo_registry.load_model(str(folder), dtype="bfloat16")
            runners = {"zoo": MlxRunner(zoo_bf[0] if isinstance(zoo_bf, tuple) else zoo_bf)}
            if torch_model is not None:
                import torch

                runners["torch"] = TorchRunner(torch_model.to(torch.bfloat16))
            del zoo, ref
        rows = {name: {"prefill_short": [], "prefill_long": [], "decode": []} for name in runners}
        for name, runner in runners.items():  # warm-up: compile kernels, touch the weights
            runner.prefill(ids_short)
        for _ in range(args.reps):
            for name, runner in runners.items():
                rows[name]["prefill_short"].append(len(ids_short) / runner.prefill(ids_short)[0])
            for name, runner in runners.items():
                rows[name]["prefill_long"].append(len(ids_long) / runner.prefill(ids_long)[0])
            for name, runner in runners.items():
                rows[name]["decode"].append(runner.decode(ids_short, args.decode))
            print(f"[{size} {dtype}] rep done: " + ", ".join(
                f"{n} {r['prefill_short'][-1]:.1f}/{r['prefill_long'][-1]:.1f}/{r['decode'][-1]:.2f}" for n, r in rows.items()),
                file=sys.stderr, flush=True)
        out = {}
        for name, runner in runners.items():
            kv, peak = runner.kv_and_peak(ids_long)
            out[name] = {k: statistics.median(v) for k, v in rows[name].items()}
            out[name].update(kv_bytes=kv, peak_extra_bytes=peak, weight_bytes=runner.weight_bytes(),
                             load_s=result["load_s"].get(name) if dtype == "float32" else None)
        result["rows"][dtype] = out
    return result


# ----------------------------------------------------------------------------- as users get them


def _run(cmd, env=None, timeout=3600):
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return None, wall, (proc.stderr or proc.stdout).strip().splitlines()[-1:]
    return proc, wall, None


def _parse_mlx_lm(text: str) -> dict:
    import re

    out = {}
    for key, pat in (("prompt", r"Prompt: (\d+) tokens, ([\d.]+) tokens-per-sec"),
                     ("gen", r"Generation: (\d+) tokens, ([\d.]+) tokens-per-sec")):
        m = re.search(pat, text)
        if m:
            out[f"{key}_tokens"], out[f"{key}_tps"] = int(m[1]), float(m[2])
    m = re.search(r"Peak memory: ([\d.]+) GB", text)
    if m:
        out["peak_gb"] = float(m[1])
    return out


def users_one(tool: str, folder: Path, tf_folder: Path, prompt_tokens: int, max_tokens: int, dtype: str) -> dict:
    """One generation by one tool in its own process; prompt tok/s, generation tok/s, peak, wall."""
    env = dict(os.environ)
    words = checkpoints.prompt_words(prompt_tokens)
    if tool == "zoo":
        cmd = [sys.executable, "-m", "zoo_registry.cli.main", "generate", str(folder), "--prompt", words,
               "--max-tokens", str(max_tokens), "--no-chat-template", "--json"]
        if dtype != "float32":
            cmd += ["--dtype", dtype]
        proc, wall, err = _run(cmd, env)
        if err:
            return {"error": " ".join(err)}
        data = json.loads(proc.stdout[proc.stdout.index("{"):])
        return {"prompt_tps": data["prompt_tps"], "gen_tps": data["generation_tps"], "gen_tokens": data["generation_tokens"],
                "prompt_tokens": data["prompt_tokens"], "peak_gb": data["peak_memory_gb"], "wall_s": wall}
    if tool == "mlx-lm":
        if dtype != "float32":
            return {"error": MLX_LM_BF16}
        env.pop("ZOO_BLAS", None)
        cmd = [sys.executable, "-m", "mlx_lm", "generate", "--model", str(folder), "--prompt", words,
               "--max-tokens", str(max_tokens), "--ignore-chat-template"]
        proc, wall, err = _run(cmd, env)
        if err:
            return {"error": " ".join(err)}
        d = _parse_mlx_lm(proc.stdout + proc.stderr)
        return {"prompt_tps": d.get("prompt_tps"), "gen_tps": d.get("gen_tps"), "gen_tokens": d.get("gen_tokens"),
                "prompt_tokens": d.get("prompt_tokens"), "peak_gb": d.get("peak_gb"), "wall_s": wall}
    cmd = [sys.executable, str(HERE / "hf_generate.py"), str(tf_folder), "--prompt-tokens", str(prompt_tokens),
           "--max-tokens", str(max_tokens), "--dtype", dtype]
    proc, wall, err = _run(cmd, env)
    if err:
        return {"error": " ".join(err)}
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    data["wall_s"] = wall
    return data


def users_mode(args) -> dict:
    from zoo_registry.runtime import blas  # only to describe what zoo will pick (no MLX here)

    root = Path(args.workdir)
    out = {"zoo_blas": None, "rows": {}}
    for size in args.sizes:
        folder = checkpoints.write_hf(root / size, size)
        tf_folder = checkpoints.write_tf(root / f"{size}-tf", size) if not args.no_torch else None
        for dtype in args.dtypes:
            cell = {}
            tools = [t for t in IMPLS if not (t == "torch" and args.no_torch)]
            for tool in tools:
                short = users_one(tool, folder, tf_folder, args.short, args.decode, dtype)
                long = users_one(tool, folder, tf_folder, args.long, 1, dtype) if "error" not in short else short
                cell[tool] = {"short": short, "long": long}
                print(f"[users {size} {dtype}] {tool}: {short} | long: {long}", file=sys.stderr, flush=True)
            out["rows"][f"{size} {dtype}"] = cell
    out["zoo_blas"] = zoo_cli_blas()
    return out


def main(argv=None) -> int:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=("like", "users", "both"), default="both")
    p.add_argument("--sizes", default="small,medium")
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--short", type=int, default=128, help="short prompt (prefill) length")
    p.add_argument("--long", type=int, default=1024, help="long prompt (prefill) length")
    p.add_argument("--decode", type=int, default=128, help="decoded tokens per measurement")
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--quick", action="store_true", help="smoke run: small, float32, 32/64-token prompts, 16 decode steps, 1 rep")
    p.add_argument("--workdir", default=os.environ.get("ZOO_BENCH_DIR", "/tmp/zoo-bench"), help="where checkpoints are written (reused)")
    p.add_argument("--out", default=str(HERE / "RESULTS.md"), help="Markdown report (not written for --quick unless given)")
    p.add_argument("--worker", choices=("like",), help=argparse.SUPPRESS)
    p.add_argument("--size", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.dtypes, args.short, args.long, args.decode, args.reps = "small", "float32", 32, 64, 16, 1
    args.sizes = [s for s in args.sizes.split(",") if s]
    args.dtypes = sorted({d for d in args.dtypes.split(",") if d}, key=lambda d: d != "float32")  # bf16 casts torch in place
    for s in args.sizes:
        if s not in checkpoints.SIZES:
            p.error(f"--sizes: unknown size {s!r} (known: {', '.join(checkpoints.SIZES)})")

    if args.worker == "like":
        print(json.dumps(like_worker(args)))
        return 0

    common = ["--short", str(args.short), "--long", str(args.long), "--decode", str(args.decode), "--reps", str(args.reps),
              "--dtypes", ",".join(args.dtypes), "--workdir", args.workdir] + (["--no-torch"] if args.no_torch else [])
    report = [f"# HunYuan on the CPU: zoo vs mlx-lm vs transformers", "", f"Machine: {machine()}", "",
              f"Generated by `benchmarks/bench_hunyuan.py {' '.join(argv if argv is not None else sys.argv[1:])}` on "
              f"{time.strftime('%Y-%m-%d %H:%M')} (load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
              "other jobs share the machine, so absolute figures are low and noisy, ratios from the alternating runs less so). "
              f"Medians of {args.reps} alternating reps. Decode bound = 21 GB/s / active weight "
              "bytes per token. Random weights (same for all tools); ratios are prefill@long / decode.", ""]
    like_results = []
    if args.mode in ("like", "both"):
        for size in args.sizes:
            proc = subprocess.run([sys.executable, __file__, "--worker", "like", "--size", size] + common,
                                  stdout=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                print(f"like-for-like worker for {size} failed (exit {proc.returncode})", file=sys.stderr)
                return proc.returncode
            like_results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        report += like_table(like_results, args)
    if args.mode in ("users", "both"):
        report += users_table(users_mode(args), args)
    text = "\n".join(report) + "\n"
    print(text)
    if not args.quick or "--out" in (argv if argv is not None else sys.argv):
        Path(args.out).write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
