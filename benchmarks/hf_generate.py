"""transformers as a user runs it: ``from_pretrained`` + ``generate`` (greedy), timed; prints one JSON line.

Prompt tok/s is the time of ``generate(max_new_tokens=1)`` (prefill plus one sampled token, as
mlx-lm counts it); decode tok/s is ``max_tokens / (t(1 + max_tokens) - t(1))``. Peak memory is the
process's maximum resident set size (torch has no CPU allocation counter).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    args = p.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(args.folder, dtype=getattr(torch, args.dtype)).eval()
    load_s = time.perf_counter() - start
    ids = torch.as_tensor(np.random.default_rng(1).integers(3, model.config.vocab_size, args.prompt_tokens))[None]
    kw = dict(do_sample=False, pad_token_id=model.config.pad_token_id, eos_token_id=None)
    with torch.inference_mode():
        model.generate(ids[:, :8], max_new_tokens=2, **kw)  # warm-up
        start = time.perf_counter()
        model.generate(ids, max_new_tokens=1, min_new_tokens=1, **kw)
        t1 = time.perf_counter() - start
        gen_tps = None
        if args.max_tokens > 1:
            start = time.perf_counter()
            out = model.generate(ids, max_new_tokens=1 + args.max_tokens, min_new_tokens=1 + args.max_tokens, **kw)
            tn = time.perf_counter() - start
            gen_tps = (out.shape[1] - ids.shape[1] - 1) / (tn - t1)
    print(json.dumps({"prompt_tokens": args.prompt_tokens, "prompt_tps": args.prompt_tokens / t1, "gen_tps": gen_tps,
                      "gen_tokens": args.max_tokens, "load_s": load_s,
                      "max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))


if __name__ == "__main__":
    main()
