"""zoo-llama-tiny, the plugin's demo model: a generator card, run through the real ``zoo`` command."""

import os
import subprocess
import sys
from pathlib import Path


def zoo_cli(*args, home: Path):
    """The real ``zoo`` command with an empty home and cache, and no network."""
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"),
               ZOO_CACHE_DIR=str(home / "cache" / "zoo"), HF_HOME=str(home / "hf"), HF_HUB_OFFLINE="1")
    for key in ("ZOO_CARDS_PATH", "ZOO_LOAD_PLUGINS", "ZOO_DISABLED_PLUGINS"):
        env.pop(key, None)
    return subprocess.run([sys.executable, "-m", "zoo_registry", *args], capture_output=True, text=True, env=env, timeout=300)


def test_zoo_generate_builds_the_demo_model_offline_from_an_empty_cache(tmp_path):
    first = zoo_cli("generate", "zoo-llama-tiny", "--prompt", "hi", "--max-tokens", "8", home=tmp_path)
    assert first.returncode == 0, first.stderr
    (folder,) = (tmp_path / "cache" / "zoo" / "generated" / "zoo-llama-tiny").iterdir()
    assert folder.name.startswith("seed0-")
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {p.name for p in folder.iterdir()}
    assert first.stdout.strip()  # random weights, so the text means nothing; but there is text
    assert "zoo: creating zoo-llama-tiny" in first.stderr  # built now, with zoo's progress line
