"""HunYuan's tokenizer from ``hy.tiktoken``: conversion cost, cached load, and encode speed.

- **first build**: converting the rank file (deriving one merge per token) and writing the
  ``tokenizer.json`` into an empty zoo cache, each in a fresh process;
- **cached load**: ``load_tokenizer`` on the same folder in a fresh process once the cache is warm
  (the conversion is not paid again; what remains is transformers reading the tokenizer.json and
  mlx-lm's streaming detokenizer table), beside mlx-lm's own loader reading the same vocabulary
  from a plain ``tokenizer.json`` folder (imports excluded from both);
- **encode**: the same text through zoo's tokenizer (Hugging Face ``tokenizers``) and through
  tiktoken configured as Tencent's HYTokenizer (the reference implementation), as a ratio, for a
  chat-sized prompt and a long document (``tokenizers``' regex split slows down on long inputs).

    nice python benchmarks/bench_tokenizer.py --rank-file ../shared/data/hunyuan/a13b/hy.tiktoken --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, shutil, sys, tempfile, time
from pathlib import Path
import transformers, mlx_lm.tokenizer_utils  # imported before timing: both loaders need them
from zoo_registry.tokenizer.cache import cached_tokenizer_file
from zoo_registry.tokenizer.loader import find_recipe, read_tokenizer_config
from zoo_registry.registry import get_registry
folder = Path(sys.argv[1])
_, declared = read_tokenizer_config(folder)
recipe = find_recipe(folder, declared, get_registry())
t1 = time.perf_counter(); path, built = cached_tokenizer_file(recipe); t2 = time.perf_counter()
from zoo_registry.loading import load_tokenizer
t3 = time.perf_counter(); tok = load_tokenizer(folder); t4 = time.perf_counter()
plain = Path(tempfile.mkdtemp()); shutil.copy(path, plain / "tokenizer.json")
(plain / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|eos|>"}))
t5 = time.perf_counter(); mlx_lm.tokenizer_utils.load(plain); t6 = time.perf_counter()
print(json.dumps({"built": built, "convert_or_lookup": t2 - t1, "load_tokenizer": t4 - t3, "mlx_lm_tokenizer_json": t6 - t5}))
"""


def child(folder: Path, cache: Path) -> dict:
    env = dict(os.environ, ZOO_CACHE_DIR=str(cache))
    out = subprocess.run([sys.executable, "-c", CHILD, str(folder)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def encode_speed(folder: Path, cache: Path, rank_file: Path) -> dict:
    import base64
    import time
    import unicodedata

    import tiktoken

    os.environ["ZOO_CACHE_DIR"] = str(cache)
    from zoo_hunyuan.tokenizer import PATTERN, special_tokens
    from zoo_registry.loading import load_tokenizer

    tok = load_tokenizer(folder)._tokenizer
    ranks = {base64.b64decode(t): int(r) for t, r in (l.split() for l in rank_file.read_bytes().splitlines() if l.strip())}
    enc = tiktoken.Encoding("HunYuan", pat_str=PATTERN, mergeable_ranks=ranks,
                            special_tokens={s: len(ranks) + i for i, s in enumerate(special_tokens())})
    line = "The quick brown fox jumps over the lazy dog. 混元大模型支持中文。 def f(x): return x ** 2\n"
    best = {}
    for repeat in (20, 2000):  # a chat prompt (~1.7K chars) and a long document (~170K chars)
        text = line * repeat
        for name, f in (("zoo (tokenizers)", lambda: tok.encode(text, add_special_tokens=False)),
                        ("tiktoken (Tencent's)", lambda: enc.encode(unicodedata.normalize("NFC", text), allowed_special="all"))):
            ts = []
            for _ in range(5):
                t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
            best[name, len(text)] = len(text) / min(ts) / 1e6
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rank-file", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/data/hunyuan/a13b/hy.tiktoken")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="zoo-bench-tok-"))
    folder = work / "ckpt"
    folder.mkdir()
    shutil.copy(args.rank_file, folder / "hy.tiktoken")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "HYTokenizer", "eos_token": "<|eos|>"}))
    first, cached = [], []
    for r in range(args.rounds):
        cache = work / f"cache{r}"
        a = child(folder, cache)
        b = child(folder, cache)
        assert a["built"] and not b["built"]
        first.append(a)
        cached.append(b)
    med = lambda rows, key: statistics.median(x[key] for x in rows)  # noqa: E731
    print(f"rank file: {args.rank_file} ({sum(1 for _ in open(args.rank_file, 'rb'))} ranks), {args.rounds} rounds, medians")
    print(f"first build: conversion {med(first, 'convert_or_lookup'):.2f} s; load_tokenizer after it {med(first, 'load_tokenizer'):.2f} s")
    print(f"cached:      cache lookup {med(cached, 'convert_or_lookup') * 1000:.1f} ms; load_tokenizer {med(cached, 'load_tokenizer'):.2f} s")
    ref = med(cached, "mlx_lm_tokenizer_json")
    print(f"mlx-lm loading the same vocabulary from a tokenizer.json: {ref:.2f} s "
          f"(zoo cached / mlx-lm: {med(cached, 'load_tokenizer') / ref:.2f}x)")
    speed = encode_speed(folder, work / "cache0", args.rank_file)
    for size in sorted({n for _, n in speed}):
        zoo, ref = speed["zoo (tokenizers)", size], speed["tiktoken (Tencent's)", size]
        print(f"encode {size} chars: zoo {zoo:.2f} M chars/s, tiktoken {ref:.2f} M chars/s, zoo / tiktoken {zoo / ref:.2f}x")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
