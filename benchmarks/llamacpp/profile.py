"""Where zoo's decode and prefill time goes on the comparison's checkpoint, per dtype (exclusive
time per module kind, ``benchmarks/profile_hunyuan.py``'s profiler: an ``eval`` after every module).

    nice python benchmarks/llamacpp/profile.py --dtypes f32,bf16,q8,q4 --decode 16
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import build  # noqa: E402


def profile(folder: Path, dtype, prompt_ids, decode: int) -> dict:
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    import profile_hunyuan
    import zoo_registry

    model = zoo_registry.load_model(str(folder), dtype=dtype)
    model = model[0] if isinstance(model, tuple) else model
    mx.eval(model.parameters())
    profile_hunyuan.run(model, prompt_ids[:16], 2)  # warm-up
    out = {}
    for phase in ("prefill", "decode"):
        prof = profile_hunyuan.Profiler(model)
        try:
            cache = make_prompt_cache(model)
            mx.eval(model(mx.array(prompt_ids)[None], cache=cache))
            if phase == "decode":
                prof.times.clear()
                tok = mx.array([[5]])
                for _ in range(decode):
                    tok = mx.argmax(model(tok, cache=cache)[:, -1], axis=-1)[:, None]
                    mx.eval(tok)
        finally:
            prof.restore()
        out[phase] = dict(prof.times)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dtypes", default="f32,bf16,q8,q4")
    p.add_argument("--decode", type=int, default=16)
    args = p.parse_args()
    from zoo_registry.runtime import blas

    status = blas.activate()
    from tokenizers import Tokenizer

    ckpt = build.cache_dir() / "ckpt" / "a13b-small"
    ids = Tokenizer.from_file(str(ckpt / "tokenizer.json")).encode((ckpt / "prompt_128.txt").read_text()).ids
    folders = {"f32": (ckpt, None), "bf16": (ckpt, "bfloat16"), "q8": (ckpt.parent / "zoo-q8", None), "q4": (ckpt.parent / "zoo-q4", None)}
    print(status.describe())
    for d in args.dtypes.split(","):
        res = profile(*folders[d], ids, args.decode)
        tp, td = sum(res["prefill"].values()), sum(res["decode"].values())
        print(f"\n{d}: prefill {len(ids)} tokens {tp * 1e3:.0f} ms profiled, decode {td / args.decode * 1e3:.1f} ms/token profiled\n")
        print("| module kind | prefill share | decode ms/token | decode share |")
        print("|---|---|---|---|")
        for k in sorted(res["decode"], key=lambda k: -res["decode"][k]):
            print(f"| {k} | {res['prefill'].get(k, 0) / tp:.0%} | {res['decode'][k] / args.decode * 1e3:.2f} | {res['decode'][k] / td:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
