"""zoo vs mlx-lm vs llama.cpp on the CPU, same random Hunyuan-A13B-shaped weights, same thread counts.

Steps (each cached under ``$ZOO_BENCH_CACHE/llamacpp``, default ``~/.cache/zoo-bench/llamacpp``):

1. build llama.cpp from the pinned PyPI sdist of ``llama-cpp-python`` (:mod:`build`; once, ``nice``);
2. write the checkpoint (:mod:`checkpoint`) and convert it: GGUF f32 / bf16 / q8_0 / q4_0 with
   llama.cpp's own converter and ``llama-quantize``, zoo's and mlx-lm's own 8- and 4-bit folders
   (MLX affine, group 64) (:mod:`convert`);
3. check that llama.cpp's greedy continuation of a 16-token prompt on the f32 GGUF (32 tokens,
   ``llama-completion --temp 0``, float32 KV cache, no flash attention: llama.cpp's CPU flash
   attention computes in float16) is the same text as zoo's ``zoo generate --temp 0`` on the checkpoint;
4. measure prefill of a 128-token prompt and decode of 128 tokens after it for each dtype and tool,
   at 1 and 2 threads, in alternation (rep 1 of every tool, then rep 2, ...), one process per run,
   the 1-minute load average read before each; medians of the reps.

How each tool runs: zoo ``zoo generate <folder> --json`` (its ``prompt_tps`` / ``generation_tps``;
``ZOO_THREADS`` set to the thread count; BLAS = whatever zoo's provider takes, reported);
mlx-lm ``python -m mlx_lm generate`` with the same BLAS preloaded (``LD_PRELOAD``; MLX's CPU
backend has no thread setting, so it runs once per rep, at "1"); llama.cpp
``llama-bench -p 128 -n 128 -t 1,2 -r 1 --poll 0`` (tg128 decodes from an empty context; ``--poll 0``
lets idle worker threads sleep, without it 2-thread runs collapse whenever another process holds a
core). zoo's bf16 runs the float32 checkpoint with ``--dtype bfloat16``; mlx-lm has no bf16 row
(its CPU ``GatherMM`` is float32 only).

    nice python benchmarks/llamacpp/bench.py --reps 3 --out /tmp/llamacpp.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import build  # noqa: E402
import checkpoint  # noqa: E402
import convert  # noqa: E402

DTYPES = {"f32": "float32", "bf16": "bfloat16", "q8": "8-bit (zoo/mlx-lm affine g64, GGUF q8_0)",
          "q4": "4-bit (zoo/mlx-lm affine g64, GGUF q4_0)"}
GGUF_OF = {"f32": "f32", "bf16": "bf16", "q8": "q8_0", "q4": "q4_0"}
PY = sys.executable


def load() -> float:
    return os.getloadavg()[0]


def zoo_blas_env() -> dict:
    """The library zoo's provider takes here, as ``LD_PRELOAD`` (and MKL's layer) for mlx-lm."""
    code = "import json; from zoo_registry.runtime import blas; print(json.dumps(blas.activate().as_dict()))"
    status = json.loads(subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True).stdout)
    if not status["effective"]:
        return {}
    env = {"LD_PRELOAD": status["path"]}
    if status["library"] == "MKL":
        env["MKL_THREADING_LAYER"] = os.environ.get("MKL_THREADING_LAYER", "SEQUENTIAL")
    return env


def run_zoo(folder: Path, prompt: str, tokens: int, threads: int, dtype=None) -> dict:
    cmd = [PY, "-m", "zoo_registry.cli.main", "generate", str(folder), "--prompt", prompt, "--max-tokens", str(tokens),
           "--no-chat-template", "--temp", "0", "--json"] + (["--dtype", dtype] if dtype else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, ZOO_THREADS=str(threads)))
    if proc.returncode:
        raise RuntimeError(f"zoo generate failed: {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout[proc.stdout.index("{"):])
    from zoo_registry.runtime.blas import BlasStatus

    extra = {k: v for k, v in out.items() if "kernel" in k.lower()}  # what zoo says of its CPU kernels, if any
    return {"prefill": out["prompt_tps"], "decode": out["generation_tps"], "prompt_tokens": out["prompt_tokens"],
            "gen_tokens": out["generation_tokens"], "text": out["text"], "blas": BlasStatus(**out["blas"]).describe(), **extra}


def run_mlx_lm(folder: Path, prompt: str, tokens: int, blas_env: dict) -> dict:
    cmd = [PY, "-m", "mlx_lm", "generate", "--model", str(folder), "--prompt", prompt, "--max-tokens", str(tokens),
           "--temp", "0", "--ignore-chat-template"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **blas_env))
    found = dict(re.findall(r"(Prompt|Generation): \d+ tokens, ([\d.]+) tokens-per-sec", proc.stdout + proc.stderr))
    counts = dict(re.findall(r"(Prompt|Generation): (\d+) tokens,", proc.stdout + proc.stderr))
    if proc.returncode or len(found) < 2:
        raise RuntimeError(f"mlx_lm generate failed: {proc.stderr[-2000:]}")
    return {"prefill": float(found["Prompt"]), "decode": float(found["Generation"]),
            "prompt_tokens": int(counts["Prompt"]), "gen_tokens": int(counts["Generation"])}


def run_llama_bench(binary: Path, gguf: Path, prompt: int, tokens: int, threads, poll: int) -> dict:
    cmd = [str(binary), "-m", str(gguf), "-p", str(prompt), "-n", str(tokens), "-t", ",".join(map(str, threads)),
           "-r", "1", "-o", "json", "--poll", str(poll)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"llama-bench failed: {proc.stderr[-2000:]}")
    out = {}
    for row in json.loads(proc.stdout):
        kind = "prefill" if row["n_prompt"] else "decode"
        out.setdefault(row["n_threads"], {})[kind] = row["avg_ts"]
        out["build"] = f"{row.get('build_number')} ({row.get('build_commit')})"
        out["cpu_info"] = row.get("cpu_info")
    return out


def greedy_check(bins: dict, ggufs: dict, ckpt: Path, tokens: int = 32) -> dict:
    """zoo's and llama.cpp's greedy continuations of ``prompt_16.txt`` on float32 weights."""
    prompt = (ckpt / "prompt_16.txt").read_text()
    zoo = run_zoo(ckpt, prompt, tokens, 1)
    cmd = [str(bins["llama-completion"]), "-m", str(ggufs["f32"]), "-p", prompt, "-n", str(tokens), "--temp", "0",
           "--ignore-eos", "-no-cnv", "-fa", "off", "-ctk", "f32", "-ctv", "f32", "-t", "1", "--no-display-prompt",
           "--no-warmup"]
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode:
        raise RuntimeError(f"llama-completion failed: {proc.stderr[-2000:]}")
    llama = proc.stdout.strip()
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(ckpt / "tokenizer.json"))
    zoo_ids, llama_ids = tok.encode(zoo["text"]).ids, tok.encode(llama).ids
    same = zoo["text"].strip() == llama
    first = next((i for i, (a, b) in enumerate(zip(zoo_ids, llama_ids)) if a != b), min(len(zoo_ids), len(llama_ids)))
    return {"equal": same and zoo_ids == llama_ids, "zoo_text": zoo["text"], "llama_text": llama,
            "zoo_tokens": zoo["gen_tokens"], "tokens_agreeing": first, "zoo_ids": len(zoo_ids), "llama_ids": len(llama_ids)}


def bandwidth(gib: float = 0.5, reps: int = 7) -> float:
    """Single-thread streaming read rate (numpy ``sum`` of a float32 array), bytes/s, median."""
    import numpy as np

    a = np.ones(int(gib * 2**30 / 4), np.float32)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        a.sum()
        times.append(time.perf_counter() - start)
    return a.nbytes / statistics.median(times)


def machine() -> dict:
    info = {"python": platform.python_version(), "kernel": platform.release(), "cpus": os.cpu_count()}
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.*)", cpuinfo)
    flags = set((re.search(r"flags\s*:\s*(.*)", cpuinfo) or re.search("()", "")).group(1).split())
    info["cpu"] = model.group(1) if model else platform.processor()
    info["simd"] = " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni") if f in flags)
    mem = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()) if Path("/proc/meminfo").exists() else None
    info["ram_gib"] = round(int(mem.group(1)) / 2**20, 1) if mem else None
    for dist in ("zoo-mlx", "mlx", "mlx-lm", "numpy", "mkl"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = None
    git = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    info["zoo_commit"] = git.stdout.strip() or None
    gcc = subprocess.run(["cc", "--version"], capture_output=True, text=True)
    info["cc"] = gcc.stdout.splitlines()[0] if gcc.returncode == 0 else None
    return info


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(x, digits=1):
    return "-" if x is None else (f"{x:.{digits}f}" if x < 1000 else f"{x:.0f}")


def table(records: list, dtypes, threads) -> str:
    lines = ["| dtype | threads | zoo prefill 128 | zoo decode | mlx-lm prefill 128 | mlx-lm decode | llama.cpp prefill 128 | "
             "llama.cpp decode | zoo / llama.cpp prefill | zoo / llama.cpp decode | load avg (median, min-max) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for d in dtypes:
        for t in threads:
            rows = [r for r in records if r["dtype"] == d and (r["threads"] == t or (r["tool"] == "mlx-lm" and t == 1))]
            get = {(tool, kind): med([r.get(kind) for r in rows if r["tool"] == tool])
                   for tool in ("zoo", "mlx-lm", "llama.cpp") for kind in ("prefill", "decode")}
            ratio = {k: (get[("zoo", k)] / get[("llama.cpp", k)] if get[("zoo", k)] and get[("llama.cpp", k)] else None)
                     for k in ("prefill", "decode")}
            loads = [r["load"] for r in rows]
            load_text = f"{med(loads):.2f} ({min(loads):.2f}-{max(loads):.2f})" if loads else "-"
            mlx = [fmt(get[("mlx-lm", "prefill")]), fmt(get[("mlx-lm", "decode")])] if t == 1 else ["(t=1 row)", ""]
            lines.append(f"| {d} | {t} | {fmt(get[('zoo', 'prefill')])} | {fmt(get[('zoo', 'decode')])} | {mlx[0]} | {mlx[1]} | "
                         f"{fmt(get[('llama.cpp', 'prefill')])} | {fmt(get[('llama.cpp', 'decode')])} | "
                         f"{fmt(ratio['prefill'], 2)}x | {fmt(ratio['decode'], 2)}x | {load_text} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--dtypes", default="f32,bf16,q8,q4")
    p.add_argument("--tools", default="zoo,mlx-lm,llama.cpp")
    p.add_argument("--prompt", type=int, default=128, choices=checkpoint.PROMPT_LENGTHS)
    p.add_argument("--tokens", type=int, default=128, help="decode tokens")
    p.add_argument("--poll", type=int, default=0, help="llama-bench --poll (0: idle threads sleep)")
    p.add_argument("--out", type=Path, help="write the Markdown report here (also printed)")
    p.add_argument("--skip-check", action="store_true", help="skip the greedy-token check (also skipped without llama.cpp)")
    p.add_argument("--jsonl", type=Path, help="append every run here (default: results.jsonl in the cache folder)")
    args = p.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    dtypes, tools = args.dtypes.split(","), args.tools.split(",")

    cache = build.cache_dir()
    with_llama = "llama.cpp" in tools
    bins = build.build() if with_llama else build.binaries()
    ckpt = checkpoint.write(cache / "ckpt" / "a13b-small")
    ggufs = convert.gguf_files(build.source_tree(), bins["llama-quantize"], ckpt, cache / "gguf") if with_llama else {}
    zoo_q = convert.zoo_folders(ckpt, cache / "ckpt")
    mlx_q = convert.mlx_lm_folders(ckpt, cache / "ckpt") if "mlx-lm" in tools else {}
    check = None if args.skip_check or not with_llama else greedy_check(bins, ggufs, ckpt)
    info = machine()
    info["bandwidth_gbs"] = round(bandwidth() / 1e9, 1)
    blas_env = zoo_blas_env()
    prompt = (ckpt / f"prompt_{args.prompt}.txt").read_text()
    jsonl = args.jsonl or cache / "results.jsonl"
    records = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for rep in range(args.reps):
        for d in dtypes:
            if "zoo" in tools:
                for t in threads:
                    folder = zoo_q.get(d, ckpt)
                    rec = {"tool": "zoo", "dtype": d, "threads": t, "rep": rep, "load": load()}
                    rec.update(run_zoo(folder, prompt, args.tokens, t, "bfloat16" if d == "bf16" else None))
                    rec.pop("text", None)
                    records.append(rec)
            if "mlx-lm" in tools and d != "bf16":
                rec = {"tool": "mlx-lm", "dtype": d, "threads": 1, "rep": rep, "load": load()}
                rec.update(run_mlx_lm(mlx_q.get(d, ckpt), prompt, args.tokens, blas_env))
                records.append(rec)
            if "llama.cpp" in tools:
                before = load()
                out = run_llama_bench(bins["llama-bench"], ggufs[GGUF_OF[d]], args.prompt, args.tokens, threads, args.poll)
                info["llama.cpp build"], info["llama.cpp cpu_info"] = out.pop("build"), out.pop("cpu_info")
                for t in threads:
                    records.append({"tool": "llama.cpp", "dtype": d, "threads": t, "rep": rep, "load": before, **out[t]})
            with open(jsonl, "a") as f:
                for rec in [r for r in records if r["rep"] == rep and r["dtype"] == d]:
                    f.write(json.dumps({"started": started, **rec}) + "\n")
            print(f"rep {rep + 1} {d}: " + ", ".join(f"{r['tool']} t{r['threads']} {fmt(r.get('prefill'))}/{fmt(r.get('decode'))}"
                                                     for r in records if r["rep"] == rep and r["dtype"] == d), file=sys.stderr)
    report = render(args, info, check, records, dtypes, threads, ggufs, zoo_q, ckpt, blas_env, started)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")
    return 0 if check is None or check["equal"] else 1


def render(args, info, check, records, dtypes, threads, ggufs, zoo_q, ckpt, blas_env, started) -> str:
    zoo_blas = next((r["blas"] for r in records if r["tool"] == "zoo"), "-")
    kernels = sorted({f"{k}={v}" for r in records if r["tool"] == "zoo" for k, v in r.items() if "kernel" in k.lower()})
    loads = [r["load"] for r in records]
    out = [f"Generated by `benchmarks/llamacpp/bench.py --reps {args.reps} --threads {args.threads} --dtypes {args.dtypes}` "
           f"from {started}; medians of {args.reps} alternating reps; prefill {args.prompt} tokens, decode {args.tokens}.",
           "",
           f"- Machine: {info['cpu']} ({info['cpus']} CPUs; {info['simd']}), {info['ram_gib']} GiB, Linux {info['kernel']}, "
           f"Python {info['python']}, {info['cc']}; single-thread read bandwidth (numpy sum) {info['bandwidth_gbs']} GB/s.",
           f"- Versions: zoo-mlx {info['zoo-mlx']} @ {info['zoo_commit']}, mlx {info['mlx']}, mlx-lm {info['mlx-lm']}, "
           f"numpy {info['numpy']}, mkl wheel {info['mkl']}; llama.cpp from llama-cpp-python {build.PIN} sdist, "
           f"build {info.get('llama.cpp build')}, {' '.join(build.CMAKE_FLAGS)}.",
           f"- zoo: {zoo_blas}; CPU kernels: {', '.join(kernels) if kernels else 'none reported by zoo generate --json'}. "
           f"mlx-lm: same BLAS via {('LD_PRELOAD=' + blas_env['LD_PRELOAD']) if blas_env else 'its bundled reference BLAS'}.",
           f"- Load average (1 min) before each run: median {med(loads):.2f}, range {min(loads):.2f}-{max(loads):.2f}.",
           "", table(records, dtypes, threads), ""]
    sizes = {k: v.stat().st_size for k, v in ggufs.items()}
    out.append("GGUF bytes: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items()) + "; zoo folders: " +
               ", ".join(f"{k} {sum(f.stat().st_size for f in v.glob('*.safetensors')):,}" for k, v in zoo_q.items()) + ".")
    if check is not None:
        out += ["", f"Greedy check (16-token prompt, 32 tokens, f32 GGUF vs zoo float32): "
                    f"{'EQUAL' if check['equal'] else 'DIFFERENT'} (texts {'identical' if check['zoo_text'].strip() == check['llama_text'] else 'differ'}; "
                    f"re-encoded, {check['tokens_agreeing']} of {check['zoo_ids']} ids agree). "
                    f"zoo: `{check['zoo_text'][:120]}`; llama.cpp: `{check['llama_text'][:120]}`."]
    total = (ckpt / "model.safetensors").stat().st_size / 4
    q4 = sum(f.stat().st_size for f in zoo_q["q4"].glob("*.safetensors")) if "q4" in zoo_q else None
    if q4 and "q4" in dtypes:
        active = checkpoint.active_weights_per_token() * q4 / total
        bound = info["bandwidth_gbs"] * 1e9 / active
        zoo_q4 = med([r["decode"] for r in records if r["tool"] == "zoo" and r["dtype"] == "q4" and r["threads"] == 1])
        out += ["", f"4-bit decode bandwidth bound: {active / 1e6:.1f} MB of active zoo 4-bit weights per token "
                    f"(active parameters x the folder's bytes per parameter) / {info['bandwidth_gbs']} GB/s = {bound:.0f} tok/s; "
                    f"zoo 1 thread {fmt(zoo_q4)} tok/s = {100 * zoo_q4 / bound:.0f}% of it."]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
