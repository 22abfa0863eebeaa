"""Component targets zoo-llama registered before zoo registered its runtime as ``zoo.*``.

zoo-llama 0.1 registered zoo's own ``Llama3RoPE`` as the component ``llama3_rope``. zoo now
registers it as ``zoo.rope.llama3`` and a plugin registers only what it adds; the old name keeps
answering, through this module, with a :class:`~zoo_registry.errors.ZooWarning` each time it is
resolved (``get_component("llama3_rope")``); its description says so in ``zoo list --components``
and ``zoo info llama3_rope``, which do not import it. Remove it in zoo-llama 0.2.
"""

import importlib
import warnings

from zoo_registry.errors import ZooWarning

# attribute -> (old component name, the zoo component that replaces it, the public module holding it)
MOVED = {"Llama3RoPE": ("llama3_rope", "zoo.rope.llama3", "zoo_registry.runtime.rope")}


def __getattr__(attr):  # PEP 562: runs when zoo resolves "zoo_llama.deprecated:Llama3RoPE"
    if attr not in MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
    old, new, module = MOVED[attr]
    warnings.warn(f"component {old!r} is deprecated: use {new!r} (zoo registers its own runtime; "
                  f"zoo-llama registers only what it adds)", ZooWarning, stacklevel=2)
    return getattr(importlib.import_module(module), attr)
