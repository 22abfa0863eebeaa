"""A checkpoint's own ``lm_head`` is never dropped unless it is a copy of the embeddings.

A config that says (or defaults to) ``tie_word_embeddings: true`` builds a model whose output
head is ``embed_tokens``; the plugin's rules then drop a saved ``lm_head.weight`` as a redundant
copy (mlx-lm does the same, PR #440). That is only right when the saved head *is* a copy. When it
differs, the config's tie flag is wrong (a config that omits the key and was read with the wrong
default; a fine-tune that untied the head), and dropping it would silently give a different
model. So before the model is built, :func:`untie_if_head_differs` compares the two tensors
(every MLX-quantization part too); if they differ, the config is switched to untied, the head is
loaded, and zoo warns, naming the file, the key and the fix.
"""

from __future__ import annotations

import warnings
from typing import Optional

from .errors import ZooWarning

HEAD = "lm_head"
EMBED = "model.embed_tokens"
PARTS = ("weight", "scales", "biases")  # MLX-quantized tensors travel as three parts


def head_differs(tensors: dict, head: str = HEAD, embed: str = EMBED) -> Optional[str]:
    """Why ``head`` is not a copy of ``embed`` in ``tensors`` (lazy MLX arrays), or ``None`` if it is one."""
    import mlx.core as mx

    for part in PARTS:
        h, e = tensors.get(f"{head}.{part}"), tensors.get(f"{embed}.{part}")
        if h is None and e is None:
            continue
        if h is None or e is None:
            return f"{head}.{part} is {'absent' if h is None else 'present'} but {embed}.{part} is {'absent' if e is None else 'present'}"
        if tuple(h.shape) != tuple(e.shape) or h.dtype != e.dtype:
            return f"{head}.{part} is {h.dtype}{list(h.shape)} but {embed}.{part} is {e.dtype}{list(e.shape)}"
        if not mx.array_equal(h, e).item():
            return f"{head}.{part} holds other values than {embed}.{part}"
    return None


def untie_if_head_differs(ckpt, config: dict, notes_key: str = "_zoo_notes") -> bool:
    """Switch ``config`` (normalised, modified in place) to untied if ``ckpt`` has a real head.

    Returns ``True`` when it did. A note is added under ``notes_key`` for the load report and a
    :class:`ZooWarning` says what was wrong and how to fix the config.
    """
    if not config.get("tie_word_embeddings") or f"{HEAD}.weight" not in ckpt.specs():
        return False
    why = head_differs(ckpt.tensors())
    if why is None:
        return False
    config["tie_word_embeddings"] = False
    message = (f"{ckpt.path / 'config.json'}::$.tie_word_embeddings: the config says the head is tied, but the checkpoint's "
               f"{HEAD}.weight is not a copy of {EMBED}.weight ({why}); loaded it as an untied head")
    config[notes_key] = [*config.get(notes_key, ()), message]
    warnings.warn(message + ". Fix: set \"tie_word_embeddings\": false in config.json", ZooWarning, stacklevel=3)
    return True


def note_unchecked_head(ckpt, config: dict, notes_key: str = "_zoo_notes") -> None:
    """For a headers-only plan: say that a saved head of a tied config is compared on load, not now."""
    if config.get("tie_word_embeddings") and f"{HEAD}.weight" in ckpt.specs():
        note = (f"{HEAD}.weight is in the checkpoint although the config says tied: loading drops it only if it "
                f"equals {EMBED}.weight, else loads it untied (this plan reads no tensor data)")
        config[notes_key] = [*config.get(notes_key, ()), note]
