"""A tiktoken rank table → a byte-level BPE ``tokenizers`` tokenizer with the same ids.

tiktoken encodes a piece of text (one match of the split pattern) by byte-pair merging: starting
from single bytes it repeatedly joins the adjacent pair whose concatenation has the lowest rank,
until no adjacent pair is a token; a piece that is itself a token is returned whole. A Hugging
Face BPE model does the same with an explicit list of merges ordered by priority. So, as
llama.cpp's converter (``QwenModel.bpe``) and transformers' ``TikTokenConverter`` do, every
multi-byte token gets the one merge that BPE restricted to lower ranks would end with: run BPE on
the token's bytes using only ranks below its own; the two parts left are its merge, whose
priority is the token's rank. ``ignore_merges`` makes a whole-token piece map directly, as
tiktoken's shortcut does. Tokens that BPE cannot reach in two parts get no merge (they are only
produced whole).

Bytes are written with GPT-2's byte → printable-character table (``ByteLevel``), the split
pattern goes in a ``Split`` pre-tokenizer, and special tokens are added tokens with fixed ids that
are matched before normalisation and splitting (tiktoken's ``allowed_special="all"``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

from ..errors import CheckpointError
from .recipe import TiktokenRecipe


@lru_cache(maxsize=1)
def byte_to_unicode() -> Dict[int, str]:
    """GPT-2's reversible byte → printable unicode character map (what ``ByteLevel`` uses)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def token_text(token: bytes) -> str:
    table = byte_to_unicode()
    return "".join(table[b] for b in token)


def _final_pair(ranks: Dict[bytes, int], token: bytes, max_rank: int) -> Optional[Tuple[bytes, bytes]]:
    """BPE over ranks below ``max_rank`` on ``token``'s bytes; its last merge if two parts remain."""
    parts = [token[i : i + 1] for i in range(len(token))]
    while len(parts) > 2:
        best, where = None, -1
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < max_rank and (best is None or rank < best):
                best, where = rank, i
        if best is None:
            return None
        parts[where : where + 2] = [parts[where] + parts[where + 1]]
    if len(parts) == 2 and parts[0] in ranks and parts[1] in ranks:
        return parts[0], parts[1]
    return None


def derive_merges(ranks: Dict[bytes, int]) -> List[Tuple[bytes, bytes]]:
    """One merge per reachable multi-byte token, in rank order (see the module docstring)."""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) > 1:
            pair = _final_pair(ranks, token, rank)
            if pair is not None:
                merges.append(pair)
    return merges


def special_ids(recipe: TiktokenRecipe, ranks: Dict[bytes, int]) -> Dict[str, int]:
    """``{special token: id}``: consecutive from ``special_start`` (default: after the last rank)."""
    start = recipe.special_start if recipe.special_start is not None else max(ranks.values()) + 1
    ids = {tok: start + i for i, tok in enumerate(recipe.special_tokens)}
    taken = set(ranks.values())
    clash = [f"{t} ({i})" for t, i in ids.items() if i in taken]
    if clash:
        raise CheckpointError(f"{recipe.rank_file}: special token ids collide with ranks: {', '.join(clash[:3])}",
                              hint="the rank file has more tokens than the tokenizer family expects")
    return ids


def tokenizer_json(recipe: TiktokenRecipe, ranks: Dict[bytes, int]) -> str:
    """The ``tokenizer.json`` text of the converted tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = {token_text(tok): rank for tok, rank in ranks.items()}
    merges = [(token_text(a), token_text(b)) for a, b in derive_merges(ranks)]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True, fuse_unk=False, byte_fallback=False))
    if recipe.normalizer:
        tok.normalizer = getattr(normalizers, recipe.normalizer)()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(recipe.pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    ids = special_ids(recipe, ranks)
    if recipe.prefix_tokens or recipe.suffix_tokens:
        pre = " ".join(recipe.prefix_tokens)
        post = " ".join(recipe.suffix_tokens)
        used = [(t, ids[t]) for t in dict.fromkeys((*recipe.prefix_tokens, *recipe.suffix_tokens))]
        tok.post_processor = processors.TemplateProcessing(
            single=" ".join(filter(None, (pre, "$A", post))),
            pair=" ".join(filter(None, (pre, "$A", post, pre, "$B:1", post))),
            special_tokens=used,
        )
    data = json.loads(tok.to_str())
    data["added_tokens"] = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
        for t, i in ids.items()
    ]
    text = json.dumps(data, ensure_ascii=False)
    Tokenizer.from_str(text)  # fail here, not in the cache, if tokenizers cannot read it back
    return text
