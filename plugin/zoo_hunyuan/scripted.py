"""Solve a tiny model's output head so that, after a given prompt, greedy decoding writes a script.

The tiny generated checkpoints (``hunyuan-tiny``, ``hunyuan-tiny-instruct``) are random blocks plus
a bigram path: they produce text-like babble, but a bigram model sees one token of context, so it
cannot keep A13B's ``<think>…</think><answer>…</answer>`` structure in order. For a demo and for
tests that need exact output (a tool-call block, tags split across tokens), the head rows of the
scripted tokens are set to ``β · onehot(target) · pinv(H)``, where ``H`` holds the model's own final
hidden states at the scripted positions. Every block of the real model still runs; only the
readout is solved, exactly, for that one prompt (the script must be no longer than the hidden
size). Other prompts still get the bigram babble.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence


def script_head(folder, prompt_ids: Sequence[int], targets: Sequence[int], beta: float = 200.0) -> None:
    """Untie ``folder``'s output head and solve it so that greedy decoding after ``prompt_ids``
    writes ``targets`` (rewrites ``model.safetensors`` and ``config.json`` in place).

    The head starts again from the embedding matrix (the bigram path's readout), so a script
    solved earlier does not compete with this one: one script per checkpoint.
    """
    import mlx.core as mx
    import numpy as np
    from safetensors.numpy import load_file, save_file

    from zoo_registry import load_model

    folder = Path(folder)
    weights = load_file(str(folder / "model.safetensors"))
    weights["lm_head.weight"] = weights["model.embed_tokens.weight"].copy()
    config = json.loads((folder / "config.json").read_text())
    config["tie_word_embeddings"] = False
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    sequence = list(prompt_ids) + list(targets)
    model = load_model(str(folder))
    hidden = np.array(model.model(mx.array([sequence]))[0].astype(mx.float32))  # final-normed states, [L, H]
    H = hidden[len(prompt_ids) - 1: len(sequence) - 1].T  # [H, n]: each position predicts the next token
    if H.shape[1] > H.shape[0]:
        raise ValueError(f"a script of {H.shape[1]} tokens is longer than the hidden size {H.shape[0]} allows")
    rows = sorted(set(targets))
    Y = np.zeros((len(rows), H.shape[1]))
    for j, target in enumerate(targets):
        Y[rows.index(target), j] = beta
    head = weights["lm_head.weight"]
    head[rows] = (Y @ np.linalg.pinv(H)).astype(head.dtype)
    weights["lm_head.weight"] = head
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
