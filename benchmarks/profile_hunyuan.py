"""Where does a HunYuan forward pass spend its time on the CPU? Exclusive time per module kind.

Every module call is wrapped: its inputs are evaluated first (so earlier lazy work is not charged
to it), then it runs and its output is evaluated; a parent's time excludes its children's. The
per-call ``eval`` removes MLX's graph fusion across modules, so the total is a little above an
unprofiled run (printed for comparison); the shares are what matters.

    nice python benchmarks/profile_hunyuan.py --size small --impl zoo --dtype float32
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import checkpoints  # noqa: E402


def kind_of(path: str) -> str:
    """Group module paths into the categories of the report."""
    if path == "":
        return "LM head (top level, outside any module)"
    if path == "model":
        return "model body (mask, layer loop)"
    leaf = path.rsplit(".", 1)[-1]
    if ".self_attn." in path or path.endswith(".self_attn"):
        if leaf in ("q_proj", "k_proj", "v_proj", "o_proj"):
            return "attention projections"
        if leaf.endswith("layernorm"):
            return "qk-norm"
        if leaf == "rope":
            return "rope"
        return "attention core (sdpa, reshapes, cache)"
    if ".shared_mlp" in path:
        return "shared MLP"
    if ".switch_mlp" in path:
        return "routed experts"
    if path.endswith(".mlp.gate") or ".mlp.gate." in path:
        return "router"
    if path.endswith(".mlp"):
        return "MoE glue (softmax, top-k, combine)"
    if leaf.endswith("layernorm") or leaf == "norm":
        return "RMSNorm"
    if path.endswith("as_linear") or "lm_head" in path:
        return "LM head"
    if "embed_tokens" in path:
        return "embedding lookup"
    if path.rsplit(".", 1)[-1].isdigit():
        return "residual adds (decoder layer)"
    return "other (" + path + ")"


class Profiler:
    def __init__(self, model):
        import mlx.core as mx
        self.mx = mx
        self.names = {id(m): name for name, m in model.named_modules()}
        self.times = defaultdict(float)
        self.stack = []
        self.patched = []
        for cls in {type(m) for _, m in model.named_modules()}:
            if "__call__" in cls.__dict__:
                self._patch(cls, "__call__")
            if "as_linear" in cls.__dict__:  # the tied LM head
                self._patch(cls, "as_linear")

    def _patch(self, cls, method):
        original = getattr(cls, method)
        prof = self
        suffix = "" if method == "__call__" else "." + method

        def wrapped(module, *args, **kwargs):
            name = prof.names.get(id(module))
            name = name + suffix if name else name
            if name is None or name.endswith("layers"):
                return original(module, *args, **kwargs)
            arrays = [a for a in args if isinstance(a, prof.mx.array)]
            prof.mx.eval(arrays)
            prof.stack.append(0.0)
            start = time.perf_counter()
            out = original(module, *args, **kwargs)
            prof.mx.eval([o for o in (out if isinstance(out, tuple) else (out,)) if isinstance(o, prof.mx.array)])
            elapsed = time.perf_counter() - start
            children = prof.stack.pop()
            prof.times[kind_of(name)] += elapsed - children
            if prof.stack:
                prof.stack[-1] += elapsed
            return out

        setattr(cls, method, wrapped)
        self.patched.append((cls, method, original))

    def restore(self):
        for cls, method, original in self.patched:
            setattr(cls, method, original)


def build(impl: str, size: str, dtype: str, workdir: Path):
    import mlx.core as mx

    folder = checkpoints.write_hf(workdir / size, size)
    if impl == "zoo":
        import zoo_registry

        model = zoo_registry.load_model(str(folder), dtype=None if dtype == "float32" else dtype)
        model = model[0] if isinstance(model, tuple) else model
    else:
        from mlx_lm.utils import load_model

        model, _ = load_model(folder)
    mx.eval(model.parameters())
    return model


def run(model, ids, decode: int):
    """Prefill ``ids`` then ``decode`` greedy steps; returns (prefill seconds, decode seconds)."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    start = time.perf_counter()
    logits = model(mx.array(ids)[None], cache=cache)
    tok = mx.argmax(logits[:, -1], axis=-1)[:, None]
    mx.eval(tok)
    prefill = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(decode):
        tok = mx.argmax(model(tok, cache=cache)[:, -1], axis=-1)[:, None]
        mx.eval(tok)
    return prefill, time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="small", choices=sorted(checkpoints.SIZES))
    p.add_argument("--impl", default="zoo", choices=("zoo", "mlx-lm"))
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--prompt", type=int, default=128)
    p.add_argument("--decode", type=int, default=32)
    p.add_argument("--workdir", default="/tmp/zoo-bench")
    args = p.parse_args()

    from zoo_registry.runtime import blas

    status = blas.activate()
    model = build(args.impl, args.size, args.dtype, Path(args.workdir))
    ids = checkpoints.prompt_ids(args.prompt)
    run(model, ids[:16], 2)  # warm-up
    plain = run(model, ids, args.decode)
    results = {}
    for phase in ("prefill", "decode"):
        prof = Profiler(model)
        try:
            if phase == "prefill":
                run(model, ids, 0)
            else:
                from mlx_lm.models.cache import make_prompt_cache
                import mlx.core as mx

                cache = make_prompt_cache(model)
                mx.eval(model(mx.array(ids)[None], cache=cache))
                prof.times.clear()
                tok = mx.array([[5]])
                for _ in range(args.decode):
                    tok = mx.argmax(model(tok, cache=cache)[:, -1], axis=-1)[:, None]
                    mx.eval(tok)
        finally:
            prof.restore()
        results[phase] = dict(prof.times)
    print(f"{args.impl} {args.size} {args.dtype}; {status.describe()}")
    print(f"unprofiled: prefill {args.prompt} tokens {args.prompt / plain[0]:.1f} tok/s, decode {args.decode / plain[1]:.2f} tok/s")
    kinds = sorted(set(results["prefill"]) | set(results["decode"]), key=lambda k: -results["decode"].get(k, 0))
    tp, td = sum(results["prefill"].values()), sum(results["decode"].values())
    print(f"| module kind | prefill ms ({args.prompt} tok) | share | decode ms/token | share |")
    print("|---|---|---|---|---|")
    for k in kinds:
        a, b = results["prefill"].get(k, 0.0), results["decode"].get(k, 0.0)
        print(f"| {k} | {a * 1e3:.1f} | {a / tp:.0%} | {b / args.decode * 1e3:.2f} | {b / td:.0%} |")
    print(f"| total (profiled) | {tp * 1e3:.1f} | | {td / args.decode * 1e3:.2f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
