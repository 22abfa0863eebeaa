"""HunYuan's tokenizer (``HYTokenizer``) as data: what zoo needs to rebuild it without its code.

Tencent ships HunYuan-Large, Hunyuan-A13B and the first Hunyuan-7B releases with a tiktoken rank
file (``hy.tiktoken``; ``save_vocabulary`` of A13B's tokenizer writes it as ``hunyuan.tiktoken``)
and ``tokenization_hy.py``, a tiktoken-based ``PreTrainedTokenizer`` that transformers can only
load with ``trust_remote_code``. Its behaviour, read from that file in
github.com/Tencent-Hunyuan/Hunyuan-A13B and github.com/Tencent/Tencent-Hunyuan-Large (``models/``):

- text is NFC-normalised (``unicodedata.normalize("NFC", text)``) before encoding;
- it is split with the cl100k-style pattern below, except that digits go **one at a time**
  (``\\p{N}``; the ``\\p{N}{1,3}`` variant is commented out in Tencent's file);
- special tokens follow the ranks, from id 127957 (the rank count): ``<|endoftext|>``,
  ``<|startoftext|>``, ``<|bos|>``, ``<|eos|>``, ``<|pad|>``, then ``<|extra_0|>``... (205 extras
  in A13B's file, vocab 128167; 204 in Large's, vocab 128166, the model pads to 129024);
- special-token strings inside text are encoded as the special tokens (``allowed_special="all"``);
- Large's class defaults: bos ``<|startoftext|>``, eos ``<|endoftext|>``, pad ``<|pad|>``, and
  ``encode`` wraps text in ``<|startoftext|>`` ... ``<|endoftext|>`` (``add_bod_token`` /
  ``add_eod_token``, both true by default); A13B's class sets none of these (its
  ``tokenizer_config.json`` names eos ``<|eos|>`` and pad ``<|pad|>``) and adds nothing.

Which release a folder holds is read from its ``config.json``: a ``vocab_size`` equal to the rank
count plus 210 (A13B, the dense v1 models, zoo's hunyuan-tiny-instruct) means A13B's tokenizer;
any other (Large: 129024) means Large's. Nothing in the folder is imported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

#: Tencent's ``PAT_STR`` (both releases): cl100k's pattern with single digits.
PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

#: Rank file names: what ``VOCAB_FILES_NAMES`` expects, and what A13B's ``save_vocabulary`` writes.
RANK_FILES = ("hy.tiktoken", "hunyuan.tiktoken")

BASE_SPECIALS = ("<|endoftext|>", "<|startoftext|>", "<|bos|>", "<|eos|>", "<|pad|>")
EXTRAS = {"a13b": 205, "large": 204}


def special_tokens(release: str = "a13b") -> tuple:
    """The special tokens of ``release`` in id order (ids follow the ranks)."""
    return BASE_SPECIALS + tuple(f"<|extra_{i}|>" for i in range(EXTRAS[release]))


def rank_file(folder: Path) -> Optional[Path]:
    return next((folder / n for n in RANK_FILES if (folder / n).is_file()), None)


def _rank_count(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def release(folder: Path, ranks: Path) -> str:
    """``"a13b"`` or ``"large"``, from ``config.json``'s vocab_size (see the module docstring)."""
    try:
        vocab = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("vocab_size")
    except (OSError, ValueError, AttributeError):
        vocab = None
    if not isinstance(vocab, int) or vocab == _rank_count(ranks) + len(BASE_SPECIALS) + EXTRAS["a13b"]:
        return "a13b"
    return "large"


def recipe(folder: Path, declared: dict):
    """The ``register_tokenizers`` builder for ``HYTokenizer``: a recipe, or ``None`` without a rank file."""
    from zoo_registry.tokenizer import TiktokenRecipe

    ranks = rank_file(Path(folder))
    if ranks is None:
        return None
    which = release(Path(folder), ranks)
    common = dict(rank_file=ranks, pattern=PATTERN, special_tokens=special_tokens(which), normalizer="NFC")
    if which == "large":
        flag = lambda key: declared.get(key, True) is not False  # noqa: E731 - Large's __init__ defaults
        return TiktokenRecipe(
            **common, bos_token="<|startoftext|>", eos_token="<|endoftext|>", pad_token="<|pad|>",
            prefix_tokens=("<|startoftext|>",) if flag("add_bod_token") else (),
            suffix_tokens=("<|endoftext|>",) if flag("add_eod_token") else (),
        )
    return TiktokenRecipe(**common)
