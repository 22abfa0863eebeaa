"""What a plugin's tokenizer builder returns: how to turn a rank file into a tokenizer.

A plugin registers, per tokenizer class its checkpoints declare, a builder
``f(folder: Path, declared: dict) -> TiktokenRecipe | None`` (see the ``register_tokenizers``
hook). The recipe holds the family's facts (rank file, split pattern, normalisation, special
tokens); zoo owns the mechanism (conversion, cache, transformers and mlx-lm wrappers).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from ..errors import PluginError

#: Unicode normal forms ``tokenizers`` can apply before splitting.
NORMALIZERS = ("NFC", "NFD", "NFKC", "NFKD")


@dataclass(frozen=True)
class TiktokenRecipe:
    """A tiktoken-style tokenizer, described as data.

    - ``rank_file``: the ``base64(token) rank`` file (ranks are ids).
    - ``pattern``: the regular expression that splits text into pieces before BPE (tiktoken's
      ``pat_str``); it is handed to ``tokenizers`` (Oniguruma) unchanged.
    - ``special_tokens``: their surface forms, given consecutive ids from ``special_start``
      (``None``: right after the highest rank). Specials are matched anywhere in text, as
      tiktoken's ``allowed_special="all"`` does.
    - ``normalizer``: a Unicode normal form applied to text first (``"NFC"``...), or ``None``.
    - ``bos_token``/``eos_token``/``pad_token``/``unk_token``: defaults of the family's tokenizer
      class; the checkpoint's ``tokenizer_config.json`` / ``special_tokens_map.json`` win.
    - ``prefix_tokens``/``suffix_tokens``: specials ``encode(text)`` puts around the ids when
      ``add_special_tokens`` is true (as the family's tokenizer does); empty for none.
    """

    rank_file: Path
    pattern: str
    special_tokens: Tuple[str, ...] = ()
    special_start: Optional[int] = None
    normalizer: Optional[str] = None
    bos_token: Optional[str] = None
    eos_token: Optional[str] = None
    pad_token: Optional[str] = None
    unk_token: Optional[str] = None
    prefix_tokens: Tuple[str, ...] = ()
    suffix_tokens: Tuple[str, ...] = ()

    def check(self, where: str) -> "TiktokenRecipe":
        """Raise :class:`PluginError` (naming ``where``, the builder) if a field is malformed."""
        if not isinstance(self.pattern, str) or not self.pattern:
            raise PluginError(f"{where}: pattern must be a non-empty regular expression string")
        if isinstance(self.special_tokens, str) or not all(isinstance(t, str) and t for t in self.special_tokens):
            raise PluginError(f"{where}: special_tokens must be a sequence of non-empty strings")
        if len(set(self.special_tokens)) != len(self.special_tokens):
            raise PluginError(f"{where}: special_tokens lists a token twice")
        if self.normalizer is not None and self.normalizer not in NORMALIZERS:
            raise PluginError(f"{where}: normalizer {self.normalizer!r} is not one of {', '.join(NORMALIZERS)}")
        if self.special_start is not None and (not isinstance(self.special_start, int) or self.special_start < 0):
            raise PluginError(f"{where}: special_start must be a non-negative integer or None")
        for name in ("prefix_tokens", "suffix_tokens"):
            missing = [t for t in getattr(self, name) if t not in self.special_tokens]
            if missing:
                raise PluginError(f"{where}: {name} {missing!r} are not among the special tokens")
        return self

    def key(self, rank_digest: str) -> str:
        """Cache key: the rank file's content hash plus every field that changes the conversion."""
        fields = {
            "ranks": rank_digest, "pattern": self.pattern, "special_tokens": list(self.special_tokens),
            "special_start": self.special_start, "normalizer": self.normalizer,
            "prefix": list(self.prefix_tokens), "suffix": list(self.suffix_tokens),
        }
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]
