"""Where the Hugging Face cache is and whether the hub may be asked, read from the environment at call time.

huggingface_hub reads ``HF_HUB_CACHE`` / ``HF_HOME`` / ``HF_HUB_OFFLINE`` once, at import; zoo reads
them each time a repo is resolved, so a test or a long-lived process can change them.
"""

from __future__ import annotations

import os
from pathlib import Path


def hf_cache_dir() -> Path:
    """The hub cache, read from the environment at call time (``HF_HUB_CACHE``, ``HF_HOME``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "huggingface")
    return Path(home).expanduser() / "hub"


def hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
