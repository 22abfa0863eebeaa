"""Converted tokenizers, built once per rank file and kept in zoo's cache folder.

Converting a 128K-rank file takes seconds (deriving 128K merges in Python); reading the cached
``tokenizer.json`` back takes a fraction of that. The key is the rank file's SHA-256 plus every
recipe field that changes the result plus :data:`CONVERTER_VERSION`, so a changed file, a
different pattern or a new converter never reuses a stale conversion. Files are written to a
temporary name and renamed, so concurrent loads never read half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Tuple

from .recipe import TiktokenRecipe

#: Bump when :mod:`.bpe` changes what it writes.
CONVERTER_VERSION = 1


def cache_root() -> Path:
    from ..cards import cache_dir

    return cache_dir() / "tokenizers"


def cached_tokenizer_file(recipe: TiktokenRecipe) -> Tuple[Path, bool]:
    """``(path of tokenizer.json, built_now)`` for ``recipe``, converting only on a cache miss."""
    from .bpe import tokenizer_json
    from .ranks import parse_ranks, read_rank_bytes

    data, digest = read_rank_bytes(recipe.rank_file)  # hashing 2 MB costs milliseconds; parsing is left to a miss
    folder = cache_root() / f"v{CONVERTER_VERSION}-{recipe.key(digest)}"
    target = folder / "tokenizer.json"
    if target.is_file():
        return target, False
    text = tokenizer_json(recipe, parse_ranks(data, recipe.rank_file))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tokenizer.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except OSError:  # a read-only cache still gets a working tokenizer, just not a cached one
        fallback = Path(tempfile.mkdtemp(prefix="zoo-tokenizer-")) / "tokenizer.json"
        fallback.write_text(text, encoding="utf-8")
        return fallback, True
    return target, True
