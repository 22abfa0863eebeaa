"""Shared fixtures: fake installed plugin distributions and running the real `zoo` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# The suite computes with the CPU BLAS zoo's users get (ZOO_BLAS, default auto). It must be chosen
# before anything imports mlx.core; tests/test_blas_parity.py reruns the parity tests with
# ZOO_BLAS=off in a child process, so parity holds on both BLAS paths.
from zoo_registry.runtime import blas as _blas

_blas.activate()


@pytest.fixture
def isolated_home(tmp_path, monkeypatch):
    """Point every user directory zoo reads (config, cache, HF cache) at a temporary folder."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "ZOO_CACHE_DIR": str(home / ".cache" / "zoo"),
        "HF_HOME": str(home / ".cache" / "huggingface"),
        "HF_HUB_OFFLINE": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("ZOO_CARDS_PATH", "ZOO_LOAD_PLUGINS", "ZOO_DISABLED_PLUGINS", "ZOO_STRICT_PLUGINS"):
        monkeypatch.delenv(key, raising=False)
    return home


class FakeSite:
    """A folder put on ``PYTHONPATH`` holding installed-looking distributions (``.dist-info``).

    ``importlib.metadata`` finds them exactly as it finds pip-installed ones, so the real
    entry-point discovery code runs against them.
    """

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def add(self, dist: str, version: str, entry_points: dict, modules: dict) -> "FakeSite":
        """``entry_points``: name -> "module:attr" or "module"; ``modules``: dotted name -> source."""
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = ["[zoo]"] + [f"{k} = {v}" for k, v in entry_points.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for module, source in modules.items():
            parts = module.split(".")
            folder = self.root.joinpath(*parts[:-1])
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(1, len(parts)):
                init = self.root.joinpath(*parts[:i], "__init__.py")
                if not init.exists():
                    init.write_text("")
            (folder / f"{parts[-1]}.py").write_text(textwrap.dedent(source))
        return self

    def file(self, relpath: str, text: str) -> Path:
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def env(self, **extra) -> dict:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.root)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env.update({k: v for k, v in extra.items() if v is not None})
        for k, v in extra.items():
            if v is None:
                env.pop(k, None)
        return env


@pytest.fixture
def fake_site(tmp_path, isolated_home):
    return FakeSite(tmp_path / "site")


def run_zoo(*args, env=None, check=None, timeout=120):
    """Run the real CLI in a subprocess; return the CompletedProcess (text mode)."""
    proc = subprocess.run(
        [sys.executable, "-m", "zoo_registry.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if check is not None and proc.returncode != check:
        raise AssertionError(f"zoo {' '.join(map(str, args))} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture
def zoo():
    return run_zoo
