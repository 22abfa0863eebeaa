"""Tokenizers: checkpoints' declared tokenizer classes served from data, without their code.

- :mod:`.ranks`: reading tiktoken-style ``base64(token) rank`` files.
- :mod:`.recipe`: :class:`TiktokenRecipe`, what a plugin's tokenizer builder returns.
- :mod:`.bpe`: a rank table → a byte-level BPE ``tokenizers`` tokenizer with the same ids.
- :mod:`.cache`: each conversion is built once and kept in zoo's cache folder.
- :mod:`.loader`: a folder → mlx-lm's ``TokenizerWrapper`` (registered builder, or mlx-lm's loader).

Plugins register builders with the ``register_tokenizers`` hook (see ``docs/plugin-guide.md``).
"""

from .loader import load_tokenizer
from .recipe import TiktokenRecipe

__all__ = ["TiktokenRecipe", "load_tokenizer"]
