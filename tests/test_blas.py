"""The CPU BLAS provider (zoo_registry.runtime.blas), each case in a fresh Python process.

A BLAS can only be chosen before ``mlx.core`` is imported and never unloaded, so every case runs a
child interpreter with its own ``ZOO_BLAS``. The child reports what ``activate()`` said, which
BLAS files ``/proc/self/maps`` shows, and the result of a float32 GEMM in MLX on inputs the test
wrote; results are compared across providers and against float64 numpy. No timings are asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from blas_fixtures import FAKE_MKL, compiler, missing_blas

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="BLAS selection is Linux-only")

CHILD = textwrap.dedent(
    """
    import json, sys
    from zoo_registry.runtime import blas
    if sys.argv[1] == "mlx-first":
        import mlx.core
    try:
        record = blas.activate().as_dict()
    except blas.BlasError as error:
        print(json.dumps({"error": type(error).__name__, "message": str(error), "hint": error.hint}))
        raise SystemExit(0)
    import numpy as np
    import mlx.core as mx
    result = None
    if sys.argv[2] != "-":
        a, w = np.load(sys.argv[2] + "/a.npy"), np.load(sys.argv[2] + "/w.npy")
        with mx.stream(mx.cpu):
            y = mx.array(a) @ mx.array(w)            # x @ W
            yt = mx.array(a) @ mx.array(w.T.copy()).T  # x @ W.T, the nn.Linear layout
            v = mx.array(a[:1]) @ mx.array(w)          # M=1, the decode / per-expert shape
            mx.eval(y, yt, v)
        np.save(sys.argv[2] + "/y.npy", np.stack([np.array(y), np.array(yt)]))
        np.save(sys.argv[2] + "/v.npy", np.array(v))
    maps = sorted({line.split()[-1] for line in open("/proc/self/maps") if line.split()[-1].startswith("/")})
    print(json.dumps({"status": record, "maps": maps, "again": blas.activate().as_dict() == record,
                      "shown": blas.status().describe(), "final": blas.status().as_dict()}))
    """
)


def run_child(zoo_blas, order="zoo-first", data="-", extra_env=None):
    env = dict(os.environ, ZOO_BLAS=zoo_blas)
    env.pop("LD_PRELOAD", None)
    env.update(extra_env or {})
    proc = subprocess.run([sys.executable, "-c", CHILD, order, str(data)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def installed(family=None):
    from zoo_registry.runtime import blas

    return [p for f, p in blas.candidates() if (family is None or f == family) and os.path.exists(p)]


def need(family=None):
    found = installed(family)
    if not found:
        missing_blas(family)
    return found


def blas_maps(maps):
    return [m for m in maps if any(name in os.path.basename(m) for name in ("libblis", "libopenblas"))]


@pytest.fixture(scope="module")
def gemm_inputs(tmp_path_factory):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((96, 384), dtype=np.float32)
    w = rng.standard_normal((384, 200), dtype=np.float32)
    folder = tmp_path_factory.mktemp("gemm")
    np.save(folder / "a.npy", a)
    np.save(folder / "w.npy", w)
    return folder, a.astype(np.float64) @ w.astype(np.float64)


def gemm(zoo_blas, inputs):
    folder, _ = inputs
    out = folder / zoo_blas.strip("/").replace("/", "_")
    out.mkdir()
    for name in ("a.npy", "w.npy"):
        (out / name).write_bytes((folder / name).read_bytes())
    record = run_child(zoo_blas, data=out)
    return record, np.load(out / "y.npy"), np.load(out / "v.npy")


@pytest.fixture(scope="module")
def off_result(gemm_inputs):
    return gemm("off", gemm_inputs)


def test_off_keeps_mlx_bundled_blas(off_result, gemm_inputs):
    record, y, _ = off_result
    assert record["status"]["effective"] is False and record["status"]["library"] is None
    assert blas_maps(record["maps"]) == []
    assert any("mlx_cpu.libs/libblas" in m for m in record["maps"])  # the reference BLAS serves MLX
    assert "bundled" in record["shown"]
    # read from libmlx's GOT: the reference BLAS the wheel bundles is what MLX calls
    assert "mlx_cpu.libs/libblas" in record["final"]["bound"] and record["final"]["bound"] in record["maps"]
    np.testing.assert_allclose(y[0], gemm_inputs[1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["auto", "blis", "openblas"])
def test_provider_is_mapped_and_gives_the_same_gemm(mode, gemm_inputs, off_result):
    need(None if mode == "auto" else mode)
    record, y, v = gemm(mode, gemm_inputs)
    status = record["status"]
    assert status["effective"] is True, status
    assert status["path"] in record["maps"]  # the library really is in the process
    if mode != "auto":
        assert status["library"].lower() == mode
    assert status["version"] and status["threads"] >= 1
    assert record["again"]  # activate() is idempotent
    assert record["final"]["bound"] == status["path"] and record["final"]["effective"]  # MLX calls it
    _, y_off, v_off = off_result
    # Equal to the reference-BLAS result up to float32 summation order, for both weight layouts.
    np.testing.assert_allclose(y, y_off, rtol=1e-4, atol=2e-4)
    np.testing.assert_allclose(v, v_off, rtol=1e-4, atol=2e-4)
    np.testing.assert_allclose(y[0], gemm_inputs[1], rtol=1e-4, atol=2e-4)
    np.testing.assert_allclose(y[1], gemm_inputs[1], rtol=1e-4, atol=2e-4)


def test_auto_prefers_blis_when_both_are_installed():
    from zoo_registry.runtime import blas

    if not (installed("blis") and installed("openblas")):
        pytest.skip("needs both libblis4-pthread and libopenblas0-pthread installed")
    status = run_child("auto")["status"]
    # MKL installed in this environment (the [fast] extra) comes first; otherwise BLIS
    assert status["library"] == ("MKL" if blas.environment_mkl() else "BLIS") and status["skipped"] == []


def test_missing_path_is_a_clear_error():
    record = run_child("/nonexistent/libopenblas.so.0")
    assert record["error"] == "BlasError"
    assert "ZOO_BLAS=/nonexistent/libopenblas.so.0" in record["message"] and "no such file" in record["message"]
    assert "auto" in record["hint"] and "off" in record["hint"]


def test_misspelt_family_suggests_the_name():
    record = run_child("openblass")
    assert record["error"] == "BlasError" and "did you mean 'openblas'" in record["message"]


def test_library_without_cblas_is_refused():
    libc = next(m for m in run_child("off")["maps"] if os.path.basename(m).startswith("libc.so"))
    record = run_child(libc)
    assert record["error"] == "BlasError" and "does not export cblas_sgemm" in record["message"]


def test_activate_after_mlx_import_says_it_cannot_take_effect():
    need()
    record = run_child("auto", order="mlx-first")
    status = record["status"]
    assert status["effective"] is False
    assert "mlx.core was imported before" in status["reason"]
    assert blas_maps(record["maps"]) == []  # nothing was loaded behind MLX's back


def test_preloaded_blas_is_reported_not_loaded_twice():
    path = need()[0]
    record = run_child("auto", extra_env={"LD_PRELOAD": path})
    status = record["status"]
    assert status["effective"] is True and status["path"] == os.path.realpath(path)
    assert "already in the global scope" in status["reason"]
    assert record["final"]["bound"] == status["path"]  # the preloaded library is what MLX calls


def test_status_before_activate_says_so():
    code = "from zoo_registry.runtime import blas; print(blas.status().describe())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "has not run" in out


# --- MKL from PyPI (the [fast] extra): found inside the environment, sequential layer, bound by MLX ---


FAKE_CHILD = textwrap.dedent(
    """
    import ctypes, json, sys
    sys.prefix = sys.argv[1]  # the environment the provider searches: <prefix>/lib
    from zoo_registry.runtime import blas
    record = blas.activate().as_dict()
    import numpy as np
    import mlx.core as mx
    a, w = np.load(sys.argv[2] + "/a.npy"), np.load(sys.argv[2] + "/w.npy")
    with mx.stream(mx.cpu):
        y = mx.array(a) @ mx.array(w)
        mx.eval(y)
    np.save(sys.argv[2] + "/y.npy", np.array(y))
    final = blas.status().as_dict()
    fake = ctypes.CDLL(final["path"])
    fake.fake_layer_seen.restype = ctypes.c_char_p
    print(json.dumps({"status": record, "final": final, "shown": blas.status().describe(),
                      "layer_seen": fake.fake_layer_seen().decode(), "calls": fake.fake_sgemm_calls()}))
    """
)


@pytest.fixture(scope="module")
def fake_prefix(tmp_path_factory):
    """``<prefix>/lib/libmkl_rt.so.{2,10}``: two sonames, so the newest (10, not 2 by string order) wins."""
    cc = compiler()
    prefix = tmp_path_factory.mktemp("env")
    (prefix / "lib").mkdir()
    source = prefix / "fake_mkl.c"
    source.write_text(FAKE_MKL)
    for soname in ("libmkl_rt.so.2", "libmkl_rt.so.10"):
        subprocess.run([cc, "-O1", "-shared", "-fPIC", "-o", str(prefix / "lib" / soname), str(source)], check=True)
    return prefix


def run_fake(prefix, gemm_inputs, extra_env=None, mode="auto"):
    folder = prefix / f"data-{mode}-{len(extra_env or {})}"
    folder.mkdir()
    for name in ("a.npy", "w.npy"):
        (folder / name).write_bytes((gemm_inputs[0] / name).read_bytes())
    env = dict(os.environ, ZOO_BLAS=mode, PYTHONUSERBASE=str(prefix / "no-user-base"))
    for name in ("LD_PRELOAD", "MKL_THREADING_LAYER"):
        env.pop(name, None)
    env.update(extra_env or {})
    proc = subprocess.run([sys.executable, "-c", FAKE_CHILD, str(prefix), str(folder)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), np.load(folder / "y.npy")


def test_environment_lib_dirs_and_newest_mkl(fake_prefix, monkeypatch):
    from zoo_registry.runtime import blas

    monkeypatch.setattr(sys, "prefix", str(fake_prefix))
    monkeypatch.setattr("site.getuserbase", lambda: str(fake_prefix / "missing"))
    assert blas.environment_lib_dirs() == [fake_prefix / "lib"]
    assert blas.environment_mkl() == [str(fake_prefix / "lib" / n) for n in ("libmkl_rt.so.10", "libmkl_rt.so.2")]
    assert blas.candidates()[0] == ("mkl", str(fake_prefix / "lib" / "libmkl_rt.so.10"))


@pytest.mark.parametrize("mode", ["auto", "mkl"])
def test_mkl_in_the_environment_is_loaded_sequential_and_bound(mode, fake_prefix, gemm_inputs):
    record, y = run_fake(fake_prefix, gemm_inputs, mode=mode)
    status, final = record["status"], record["final"]
    expected = os.path.realpath(fake_prefix / "lib" / "libmkl_rt.so.10")
    assert status["library"] == "MKL" and status["path"] == expected and status["effective"]
    assert status["version"] == "MKL 2099.1 (build 20990101)" and status["threads"] == 1
    assert record["layer_seen"] == "SEQUENTIAL"  # in the environment when the library initialised
    assert "MKL_THREADING_LAYER=SEQUENTIAL (set by zoo)" in status["reason"]
    assert final["bound"] == expected and final["effective"]  # libmlx's GOT points into it...
    assert record["calls"] > 0  # ...and MLX's matmul really ran there
    assert "MLX's cblas_sgemm bound to it" in record["shown"]
    np.testing.assert_allclose(y, gemm_inputs[1], rtol=1e-4, atol=2e-4)


def test_a_layer_the_user_chose_is_kept_and_said(fake_prefix, gemm_inputs):
    record, _ = run_fake(fake_prefix, gemm_inputs, extra_env={"MKL_THREADING_LAYER": "GNU"})
    assert record["layer_seen"] == "GNU"
    assert "MKL_THREADING_LAYER=GNU (set by you)" in record["status"]["reason"]


def test_real_mkl_wheel_runs_sequential():
    """With the [fast] extra installed: the real libmkl_rt from the environment, its sequential
    layer mapped (no threaded layer, no OpenMP runtime) and MLX bound to it."""
    from zoo_registry.runtime import blas

    if not blas.environment_mkl():
        pytest.skip('the mkl wheel is not installed in this environment (pip install ".[fast]")')
    record = run_child("mkl", data="-")
    status, final = record["status"], record["final"]
    assert status["path"] == os.path.realpath(blas.environment_mkl()[0])
    assert status["version"].startswith("MKL 20") and status["threads"] == 1 and status["threading"] == "sequential"
    names = {os.path.basename(m) for m in record["maps"]}
    assert any(n.startswith("libmkl_sequential") for n in names)
    assert not any(n.startswith(("libmkl_gnu_thread", "libmkl_intel_thread", "libmkl_tbb_thread", "libiomp5")) for n in names)
    assert final["bound"] == status["path"]
