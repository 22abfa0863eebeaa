"""Deterministic weights for a checkpoint layout, from numpy seeds alone.

Shared by the oracle script (:mod:`tests.oracles.tencent_hunyuan`, which loads them into
Tencent's PyTorch model) and the test that loads the same weights into zoo
(``tests/test_hunyuan_tencent_oracle.py``). Each tensor depends only on its name, its shape and
the case seed, never on the order of the keys, so both sides rebuild identical arrays from a key
list. numpy only: the oracle's venv and zoo's test venv both have it.
"""

from __future__ import annotations

import zlib
from typing import Dict, Iterable, Tuple

import numpy as np


def tensor_seed(name: str, seed: int) -> int:
    """The generator seed of one tensor: CRC-32 of its name mixed with the case seed."""
    return (zlib.crc32(name.encode("utf-8")) * 1_000_003 + seed) % (2**63)


def make_tensor(name: str, shape: Tuple[int, ...], seed: int) -> np.ndarray:
    """float32 values for ``name``: norms around 1, matrices ~ N(0, 1/fan_in), embeddings ~ N(0, 1)."""
    rng = np.random.default_rng(tensor_seed(name, seed))
    if len(shape) == 1:  # RMSNorm weights (query/key layernorm, layer norms, final norm)
        return (1.0 + 0.2 * rng.standard_normal(shape)).astype(np.float32)
    if name.endswith("embed_tokens.weight"):
        return rng.standard_normal(shape).astype(np.float32)
    scale = 1.0 / np.sqrt(shape[-1])
    if name.endswith("mlp.gate.wg.weight"):
        scale *= 4.0  # a decisive router, so near-ties cannot flip the expert choice
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def make_weights(shapes: Iterable[Tuple[str, Tuple[int, ...]]], seed: int) -> Dict[str, np.ndarray]:
    """``{name: array}`` for ``(name, shape)`` pairs."""
    return {name: make_tensor(name, tuple(shape), seed) for name, shape in shapes}


#: Name and shape of the tensor whose checksum pins numpy's ``default_rng`` stream (``meta.json``).
PROBE = ("numpy.default_rng.probe", (8, 16))


def stream_checksum(seed: int) -> str:
    """SHA-256 of one seeded tensor: equal iff numpy's generator still yields the golden files' weights."""
    import hashlib

    return hashlib.sha256(make_tensor(*PROBE, seed).tobytes()).hexdigest()
