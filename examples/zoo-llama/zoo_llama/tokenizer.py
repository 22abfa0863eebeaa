"""Qwen (v1)'s tiktoken tokenizer, ``QWenTokenizer``, served from its rank file alone.

Qwen-7B/14B/72B (model_type ``qwen``, an mlx-lm architecture) ship ``qwen.tiktoken`` and
``tokenization_qwen.py``, which transformers loads only with ``trust_remote_code``. The facts zoo
needs, from ``tokenization_qwen.py`` in huggingface.co/Qwen/Qwen-7B: NFC before encoding, the
split pattern below (single digits), and the specials ``<|endoftext|>``, ``<|im_start|>``,
``<|im_end|>``, ``<|extra_0|>``...``<|extra_204|>`` numbered from the rank count (151643).
"""

from pathlib import Path

PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>") + tuple(f"<|extra_{i}|>" for i in range(205))


def qwen_recipe(folder: Path, declared: dict):
    """``QWenTokenizer`` → a recipe for zoo's converter, or ``None`` when there is no rank file."""
    from zoo_registry.tokenizer import TiktokenRecipe

    ranks = Path(folder) / "qwen.tiktoken"
    if not ranks.is_file():
        return None
    return TiktokenRecipe(ranks, PATTERN, SPECIALS, normalizer="NFC", eos_token="<|endoftext|>")
