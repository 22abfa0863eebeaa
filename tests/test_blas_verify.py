"""The BLAS provider checks before it trusts a library, closes what it refuses, activates once
under threads, and stays out of library calls unless asked (zoo_registry.runtime.blas).

Every case runs a child interpreter (a BLAS is chosen before ``mlx.core`` loads and never
unloaded) with real shared libraries: the system's BLIS/OpenBLAS and small libraries compiled here
(tests/blas_fixtures.py). What a child reports about loading is read from ``/proc/self/maps`` and
libmlx's GOT, not from zoo's own bookkeeping alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from blas_fixtures import FAKE_MKL, NO_CBLAS, WRONG_SGEMM, build, missing_blas

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="BLAS selection is Linux-only")

CHILD = textwrap.dedent(
    """
    import json, os, sys, threading, time
    if sys.argv[1] != "-":
        sys.prefix = sys.argv[1]  # the environment the provider searches for MKL: <prefix>/lib
    from zoo_registry.runtime import blas
    what = sys.argv[2]
    out = {}
    if what == "threads":
        calls, opened = [], blas.open_checked
        def slow_open(path, checks):  # widen the window in which two threads could both load
            calls.append(path)
            time.sleep(0.2)
            return opened(path, checks)
        blas.open_checked = slow_open
        start, records = threading.Barrier(8), []
        def worker():
            start.wait()
            records.append(blas.activate())
        threads = [threading.Thread(target=worker) for _ in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        out.update(calls=calls, same=len({id(r) for r in records}) == 1 and len(records) == 8)
    elif what == "load_model":
        import zoo_registry
        model = zoo_registry.load_model(sys.argv[3])
        import mlx.core as mx
        mx.eval(model(mx.array([[1, 2, 3]])))
    else:
        try:
            blas.activate()
        except blas.BlasError as error:
            out.update(error=str(error))
    out["status"] = blas.status().as_dict()
    out["shown"] = blas.status().describe()
    out["maps"] = sorted({l.split()[-1] for l in open("/proc/self/maps") if l.split()[-1].startswith("/")})
    out["layer_env"] = os.environ.get("MKL_THREADING_LAYER")
    print(json.dumps(out))
    """
)


def run_child(zoo_blas, what="activate", prefix="-", arg="-"):
    env = dict(os.environ, PYTHONUSERBASE="/nonexistent-user-base")
    for name in ("LD_PRELOAD", "MKL_THREADING_LAYER", "ZOO_BLAS"):
        env.pop(name, None)
    if zoo_blas is not None:
        env["ZOO_BLAS"] = zoo_blas
    proc = subprocess.run([sys.executable, "-c", CHILD, str(prefix), what, str(arg)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def system_blas():
    from zoo_registry.runtime import blas

    found = [os.path.realpath(p) for f, p in blas.candidates() if f in ("blis", "openblas") and os.path.exists(p)]
    return found or missing_blas()


@pytest.fixture(scope="module")
def libs(tmp_path_factory):
    """``good``/``wrong``/``none``: a correct stand-in libmkl_rt, one with a wrong sgemm, one with no
    CBLAS; ``wrong_prefix``: an environment whose only MKL (``lib/libmkl_rt.so.9``) is the wrong one."""
    root = tmp_path_factory.mktemp("libs")
    (root / "env" / "lib").mkdir(parents=True)
    return {
        "good": build(FAKE_MKL, root / "libmkl_rt.so.5"),
        "wrong": build(WRONG_SGEMM, root / "libmkl_rt.so.7"),
        "none": build(NO_CBLAS, root / "libnotablas.so"),
        "wrong_prefix": build(WRONG_SGEMM, root / "env" / "lib" / "libmkl_rt.so.9").parent.parent,
    }


@pytest.mark.parametrize("kind,why", [("none", "does not export cblas_sgemm"),
                                      ("wrong", "computed a 3x4 @ 4x2 product (x @ W) as [1.0")])
def test_refused_library_is_closed_again(libs, kind, why):
    record = run_child(str(libs[kind]))
    assert why in record["error"] and str(libs[kind]) in record["error"]
    assert str(libs[kind]) not in record["maps"]  # dlclose-d: not mapped any more
    assert record["layer_env"] is None  # the MKL_THREADING_LAYER zoo set for it is taken back
    assert record["status"]["effective"] is False


def test_auto_moves_past_a_wrong_library_to_a_working_one(libs):
    wrong = str(libs["wrong_prefix"] / "lib" / "libmkl_rt.so.9")
    record = run_child("auto", prefix=libs["wrong_prefix"])
    status = record["status"]
    assert wrong not in record["maps"] and record["layer_env"] is None
    assert any(wrong in s and "computed a 3x4 @ 4x2 product" in s for s in status["skipped"]), status["skipped"]
    taken = system_blas()[0]
    assert status["effective"] and status["path"] == taken and status["bound"] == taken, status
    assert status["library"] in ("BLIS", "OpenBLAS")
    assert status["checks"] == ["exports cblas_sgemm", "the process resolves cblas_sgemm to it",
                                "cblas_sgemm computes x @ W and x @ W.T exactly (3x4 @ 4x2)", "libmlx's cblas_sgemm is bound to it"]


def test_activation_from_many_threads_loads_once(libs):
    record = run_child(str(libs["good"]), what="threads")
    assert record["calls"] == [str(libs["good"])]  # one thread loaded, seven waited for its record
    assert record["same"]  # and all eight got that same record
    status = record["status"]
    assert status["effective"] and status["bound"] == str(libs["good"])
    assert record["layer_env"] == "SEQUENTIAL"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from zoo_hunyuan import tiny as gen

    return gen.generate(tmp_path_factory.mktemp("tiny") / "ckpt", seed=0)


def test_library_load_model_leaves_the_blas_alone_unless_asked(tiny):
    record = run_child(None, what="load_model", arg=tiny)
    status = record["status"]
    assert status["effective"] is False and status["path"] is None and "has not run" in status["reason"]
    assert "ZOO_BLAS=auto" in status["reason"]  # the reason says how to opt in
    assert not any(n in os.path.basename(m) for m in record["maps"] for n in ("libblis", "libopenblas", "libmkl"))
    assert record["layer_env"] is None


def test_library_load_model_takes_zoo_blas_when_set(tiny, libs):
    record = run_child(str(libs["good"]), what="load_model", arg=tiny)
    status = record["status"]
    assert status["effective"] and status["bound"] == str(libs["good"]) and str(libs["good"]) in record["maps"]
    assert "MLX's cblas_sgemm bound to it" in record["shown"]


def test_zoo_load_json_reports_the_verified_binding(tiny, libs, zoo):
    env = dict(os.environ, ZOO_BLAS=str(libs["good"]))
    env.pop("MKL_THREADING_LAYER", None)
    out = json.loads(zoo("load", tiny, "--json", env=env, check=0).stdout)
    assert out["blas"]["effective"] is True and out["blas"]["bound"] == str(libs["good"])
    assert out["blas"]["checks"][-1] == "libmlx's cblas_sgemm is bound to it"
    env["ZOO_BLAS"] = str(libs["wrong"])
    proc = zoo("load", tiny, env=env, check=1)
    assert f"ZOO_BLAS={libs['wrong']}" in proc.stderr and "computed a 3x4 @ 4x2 product" in proc.stderr
    assert "Traceback" not in proc.stderr
