"""Reading tiktoken-style rank files: one ``base64(token) rank`` pair per line.

This is the vocabulary format of OpenAI's ``tiktoken`` (``load_tiktoken_bpe``) and of every
tokenizer built on it (HunYuan's ``hy.tiktoken``, Qwen's ``qwen.tiktoken``, ...): each line holds
a token's bytes in base64 and its BPE rank, which is also its id. Lower rank = merged earlier.

The file is data only; nothing here runs code from a checkpoint. Bad lines are errors naming the
file and the line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path
from typing import Dict, Tuple

from ..errors import CheckpointError


def read_ranks(path) -> Tuple[Dict[bytes, int], str]:
    """``({token bytes: rank}, sha256 of the file)`` for the rank file at ``path``.

    Blank lines are skipped. A line that is not ``base64 integer``, a token or a rank seen twice,
    or a negative rank raises :class:`~zoo_registry.errors.CheckpointError` naming the line.
    """
    data, digest = read_rank_bytes(path)
    return parse_ranks(data, path), digest


def read_rank_bytes(path) -> Tuple[bytes, str]:
    """``(contents, sha256)`` of a rank file, or :class:`CheckpointError` naming it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the rank file: {e.strerror or e}") from None
    return data, hashlib.sha256(data).hexdigest()


def parse_ranks(data: bytes, path="<rank file>") -> Dict[bytes, int]:
    """Parse the bytes of a rank file (see :func:`read_ranks`)."""
    ranks: Dict[bytes, int] = {}
    seen_ranks: Dict[int, int] = {}
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        where = f"{path}:{number}"
        if len(fields) != 2:
            raise CheckpointError(f"{where}: expected 'base64-token rank', got {line[:60]!r}",
                                  hint="a tiktoken rank file has one token per line: its bytes in base64, a space, its rank")
        try:
            token = base64.b64decode(fields[0], validate=True)
            rank = int(fields[1])
        except (binascii.Error, ValueError):
            raise CheckpointError(f"{where}: {line[:60]!r} is not 'base64-token rank'",
                                  hint="the file is damaged or is not a tiktoken rank file") from None
        if rank < 0:
            raise CheckpointError(f"{where}: negative rank {rank}")
        if token in ranks:
            raise CheckpointError(f"{where}: token {token!r} already has rank {ranks[token]}")
        if rank in seen_ranks:
            raise CheckpointError(f"{where}: rank {rank} is already used on line {seen_ranks[rank]}")
        ranks[token] = rank
        seen_ranks[rank] = number
    if not ranks:
        raise CheckpointError(f"{path}: the rank file holds no tokens")
    return ranks


def write_ranks(ranks: Dict[bytes, int], path) -> Path:
    """Write ``ranks`` as a rank file (sorted by rank), the inverse of :func:`read_ranks`."""
    path = Path(path)
    lines = (f"{base64.b64encode(tok).decode('ascii')} {rank}\n" for tok, rank in sorted(ranks.items(), key=lambda kv: kv[1]))
    path.write_text("".join(lines), encoding="ascii")
    return path
