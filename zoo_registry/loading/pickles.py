"""Loader glue for PyTorch pickle weights (read by :mod:`..torch_pickle` when ``allow_pickle_weights``).

:func:`note_pickles` tells the user, every time, that pickles were read and how (a
:class:`ZooWarning`, printed by the CLI as ``zoo: warning: ...``, and a load-report note);
:func:`load_builtin_pickles` loads an architecture that mlx-lm itself serves from pickle weights,
with mlx-lm's model class and ``sanitize`` (mlx-lm's own loader reads safetensors only).
"""

from __future__ import annotations

import warnings

from ..checkpoint import Checkpoint
from ..errors import CheckpointError, ZooWarning
from .builtin import build_mlx_lm
from .config import mx_dtype


def note_pickles(ckpt: Checkpoint, report=None) -> None:
    """Say (warning, and a load-report note) that pickle weights were read with the restricted reader."""
    n = len(ckpt.pickle_files)
    text = (f"read {n} PyTorch pickle file{'s' if n != 1 else ''} ({ckpt.pickle_files[0].name}{' ...' if n > 1 else ''}) "
            "with zoo's restricted reader (allow_pickle_weights: tensor data only, no code from the files ran)")
    if report is not None:
        report.notes.append(text)
    warnings.warn(f"{ckpt.path}: {text}; `zoo convert` writes them as safetensors once", ZooWarning, stacklevel=3)


def load_builtin_pickles(ckpt: Checkpoint, config: dict, strict: bool, dtype):
    """An mlx-lm architecture from pickle weights: mlx-lm's model class and sanitize, our tensors."""
    model, tensors = build_mlx_lm(ckpt, config, config.get("model_type"))
    try:
        model.load_weights(list(tensors.items()), strict=strict)
    except ValueError as e:  # mlx-lm's strict check: missing or unexpected parameters
        raise CheckpointError(f"{ckpt.path}: mlx-lm could not load the checkpoint: {e}") from None
    if dtype is not None:
        model.set_dtype(mx_dtype(dtype))
    return model
