"""The parity tests hold on both BLAS paths: the optimised one this suite runs with, and MLX's own.

The parent suite activates ``ZOO_BLAS`` (default ``auto``) in conftest.py. Here the same parity
tests (against mlx-lm and, when installed, transformers) run again in a child pytest with
``ZOO_BLAS=off``, i.e. on the reference BLAS bundled in the mlx wheel, and in the CLI.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_zoo

TESTS = Path(__file__).resolve().parent


def test_parity_tests_pass_with_mlx_bundled_blas(tmp_path):
    env = dict(os.environ, ZOO_BLAS="off")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(TESTS / "test_hunyuan_model.py"), str(TESTS / "test_hunyuan_parity_transformers.py"),
         "-k", "parity or matches or cached_decode"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout


def test_zoo_load_reports_the_blas_it_chose(isolated_home):
    off = json.loads(run_zoo("load", "hunyuan-tiny", "--json", env=dict(os.environ, ZOO_BLAS="off"), check=0).stdout)
    assert off["blas"]["effective"] is False and off["blas"]["reason"] == "ZOO_BLAS=off"
    auto = json.loads(run_zoo("load", "hunyuan-tiny", "--json", env=dict(os.environ, ZOO_BLAS="auto"), check=0).stdout)
    assert auto["blas"]["mode"] == "auto"
    from zoo_registry.runtime import blas

    installed = [(family, path) for family, path in blas.candidates() if os.path.exists(path)]
    assert auto["blas"]["effective"] is bool(installed), (installed, auto["blas"])  # used exactly when one is there
    if installed:  # the first of auto's order (not just any optimised one)
        family, path = installed[0]
        name = {"mkl": "MKL", "blis": "BLIS", "openblas": "OpenBLAS"}[family]
        assert (auto["blas"]["library"], auto["blas"]["path"]) == (name, os.path.realpath(path))
    else:
        assert "no optimised BLAS found" in auto["blas"]["reason"]


def test_bad_zoo_blas_is_one_clear_error(isolated_home):
    proc = run_zoo("generate", "hunyuan-tiny", "-p", "hi", env=dict(os.environ, ZOO_BLAS="openblass"))
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0].startswith("zoo: error: ZOO_BLAS=openblass:")
    assert "Traceback" not in proc.stderr
