"""zoo-llama: the Llama / Qwen2 decoder family as a zoo plugin (``model_type: zoo_llama``).

An example of a third-party plugin written against zoo's documented interface only
(``docs/plugin-guide.md``): hooks in :mod:`.hooks`, a config schema, sanitize rules, model cards,
and a model assembled from ``zoo_registry.runtime``. Importing this package imports no MLX.
"""

__version__ = "0.1.0"
