"""The report side of ``benchmarks/bench_hunyuan.py``: the machine and BLAS lines, and the Markdown
tables of the like-for-like and the as-users-run-them modes."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import checkpoints  # noqa: E402

BANDWIDTH = 21e9  # bytes/s: numpy sum, one thread, on the benchmark machine (benchmarks/llamacpp/bench.py measures it each run)
MLX_LM_BF16 = "n/a (GatherMM float32 only)"
IMPLS = ("zoo", "mlx-lm", "torch")


def zoo_cli_blas() -> str:
    """What ``zoo generate`` runs on: the provider's choice if the CLI activates it, else the bundled BLAS."""
    import inspect

    from zoo_registry import loading
    from zoo_registry.cli import generate_cmd, load_cmd

    wired = any("blas" in inspect.getsource(m) and "activate" in inspect.getsource(m) for m in (loading, generate_cmd, load_cmd))
    if not wired:
        return "MLX's bundled BLAS (the zoo CLI does not call zoo_registry.runtime.blas.activate() yet)"
    probe = subprocess.run([sys.executable, "-c", "from zoo_registry.runtime import blas; print(blas.activate().describe())"],
                           capture_output=True, text=True)
    return probe.stdout.strip() or probe.stderr.strip()[-200:]


# ----------------------------------------------------------------------------- report


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")) / 2**20
    except (OSError, StopIteration):
        mem = 0
    versions = {}
    for mod in ("mlx", "mlx_lm", "transformers", "torch", "numpy"):
        try:
            from importlib.metadata import version

            versions[mod] = version(mod.replace("_", "-"))
        except Exception:
            versions[mod] = "-"
    flags = ""
    try:
        text = open("/proc/cpuinfo").read()
        flags = ", ".join(f for f in ("avx2", "avx512f", "fma") if f" {f}" in text)
    except OSError:
        pass
    return (f"{cpu} ({os.cpu_count()} vCPU, {flags}), {mem:.0f} GiB, {platform.platform()}, Python {platform.python_version()}; "
            + ", ".join(f"{k} {v}" for k, v in versions.items())
            + f"; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}")


def _fmt(x, nd=1):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return f"{x:.{nd}f}" if x < 100 else f"{x:.0f}"


def _ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def like_table(results, args) -> list:
    lines = []
    for res in results:
        size = res["size"]
        lines += [f"### {size} (like for like, one process; {res['blas']})", ""]
        for check, value in res["checks"].items():
            lines.append(f"- {check}: {value if isinstance(value, bool) else f'{value:.3g}'}")
        lines += ["", f"| dtype | impl | prefill {args.short} tok/s | prefill {args.long} tok/s | decode tok/s ({args.decode}) | "
                      "of bound | KV bytes @%d | weights | peak extra (prefill %d) | load s | prefill/decode vs mlx-lm | vs torch |" % (args.long, args.long),
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for dtype, rows in res["rows"].items():
            itemsize = 4 if dtype == "float32" else 2
            bound = BANDWIDTH / checkpoints.active_bytes_per_token(size, itemsize)
            names = list(rows) if dtype == "float32" else ["zoo", "mlx-lm"] + [n for n in rows if n != "zoo"]
            for name in names:
                if name not in rows:
                    lines.append(f"| {dtype} | {name} | {MLX_LM_BF16} | | | | | | | | | |")
                    continue
                r = rows[name]
                ref, tor = rows.get("mlx-lm"), rows.get("torch")
                vs_ref = f"{_ratio(r['prefill_long'], ref['prefill_long'])} / {_ratio(r['decode'], ref['decode'])}" if ref and name != "mlx-lm" else "-"
                vs_tor = f"{_ratio(r['prefill_long'], tor['prefill_long'])} / {_ratio(r['decode'], tor['decode'])}" if tor and name != "torch" else "-"
                lines.append(
                    f"| {dtype} | {name} | {_fmt(r['prefill_short'])} | {_fmt(r['prefill_long'])} | {_fmt(r['decode'], 2)} | "
                    f"{r['decode'] / bound:.0%} of {bound:.0f} | {_mb(r['kv_bytes'])} | {_mb(r['weight_bytes'])} | {_mb(r['peak_extra_bytes'])} | "
                    f"{_fmt(r['load_s'], 2)} | {vs_ref} | {vs_tor} |")
        lines.append("")
    return lines


def _mb(n):
    return "-" if n is None else f"{n / 2**20:.1f} MiB"


def users_table(res, args) -> list:
    lines = [f"### As users get them (separate processes; zoo: {res['zoo_blas']}; mlx-lm and transformers as installed)", "",
             f"| config | tool | prefill {args.short} tok/s | prefill {args.long} tok/s | decode tok/s ({args.decode}) | peak | wall s (short run) | decode vs mlx-lm | vs torch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key, cell in res["rows"].items():
        for tool, r in cell.items():
            s, l = r["short"], r["long"]
            if "error" in s:
                lines.append(f"| {key} | {tool} | {s['error']} | | | | | | |")
                continue
            peak = f"{s['peak_gb']:.2f} GB" if s.get("peak_gb") else (f"{s['max_rss_gb']:.2f} GB RSS" if s.get("max_rss_gb") else "-")
            ref, tor = cell.get("mlx-lm", {}).get("short", {}), cell.get("torch", {}).get("short", {})
            lines.append(f"| {key} | {tool} | {_fmt(s.get('prompt_tps'))} | {_fmt(l.get('prompt_tps'))} | {_fmt(s.get('gen_tps'), 2)} | {peak} | "
                         f"{_fmt(s.get('wall_s'))} | {_ratio(s.get('gen_tps'), ref.get('gen_tps')) if tool != 'mlx-lm' else '-'} | "
                         f"{_ratio(s.get('gen_tps'), tor.get('gen_tps')) if tool != 'torch' else '-'} |")
    lines.append("")
    return lines
