"""CompatTokenizer: byte-level tiktoken ranks (``compat.tiktoken``) and one end-of-text special."""

from pathlib import Path

PATTERN = r""" ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+"""


def recipe(folder: Path, declared: dict):
    from zoo_registry.tokenizer import TiktokenRecipe

    ranks = Path(folder) / "compat.tiktoken"
    if not ranks.is_file():
        return None
    return TiktokenRecipe(ranks, PATTERN, ("<|end|>",), eos_token="<|end|>")
