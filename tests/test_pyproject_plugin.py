"""A plugin packaged with ``pyproject.toml`` alone (PEP 621 ``[project.entry-points."zoo"]``, no
setup.py, no setup.cfg) installs with pip without setuptools warnings and is discovered, loaded
and served like any other (issue 14, item 9).

The plugin is ``docs/examples/pyproject-plugin``, whose ``pyproject.toml`` docs/plugin-guide.md
shows verbatim. It is really built and installed (pip, setuptools' PEP 517 backend, into a
``--target`` folder; about 3 s), then used from a fresh process through ``PYTHONPATH``.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "pyproject-plugin"
CHECK = """
import json, sys
import mlx.core as mx
from zoo_registry import load_model
from zoo_registry.testing import tiny_checkpoint

config = {"model_type": "zoo_toy", "vocab_size": 32, "hidden_size": 16, "intermediate_size": 24, "torch_dtype": "float32"}
ckpt = tiny_checkpoint(sys.argv[1], config)
model, info = load_model(ckpt.path, return_info=True)
logits = model(mx.array([[1, 2, 3]]))
print(json.dumps({"provider": info.provider, "shape": list(logits.shape), "ok": info.report.ok}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(site folder, pip's output)`` after a real pip install of the pyproject-only plugin."""
    root = tmp_path_factory.mktemp("pyproject-plugin")
    src = root / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    assert not (src / "setup.py").exists() and not (src / "setup.cfg").exists()
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--disable-pip-version-check",
         "--target", str(root / "site"), "-v", str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root / "site", proc.stdout + proc.stderr


def test_installs_without_setuptools_warnings(installed):
    site, output = installed
    warnings = [line for line in output.splitlines() if re.search(r"\w+Warning\b|deprecat", line, re.I)]
    assert not warnings, "\n".join(warnings)
    dist = next(site.glob("zoo_toy-0.1.0.dist-info"))
    assert "[zoo]\nzoo-toy = zoo_toy.hooks" in (dist / "entry_points.txt").read_text()
    assert (site / "zoo_toy" / "schemas" / "zoo_toy.config.schema.json").is_file()  # package data shipped


def test_is_discovered_validated_and_loaded(installed, fake_site, zoo, tmp_path):
    site, _ = installed
    env = fake_site.env(PYTHONPATH=str(site))
    plugins = {p["name"]: p for p in json.loads(zoo("plugins", "--json", env=env, check=0).stdout)}
    assert plugins["zoo-toy"]["status"] == "loaded", plugins["zoo-toy"]
    assert (plugins["zoo-toy"]["distribution"], plugins["zoo-toy"]["version"]) == ("zoo-toy", "0.1.0")
    assert plugins["zoo-toy"]["hooks"] == ["register_architectures"]
    proc = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path / "ckpt")], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == {"provider": "zoo-toy", "shape": [1, 3, 32], "ok": True}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model_type": "zoo_toy", "vocab_size": 32, "hidden_size": 16, "intermediate_sise": 24,
                               "torch_dtype": "bfloat16"}))
    proc = zoo("validate", bad, env=env)
    assert proc.returncode == 1
    assert f"{bad}::$.intermediate_sise: unknown key (did you mean 'intermediate_size'?)" in proc.stderr
