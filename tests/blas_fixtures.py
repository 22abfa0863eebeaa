"""Real shared libraries for the BLAS provider's tests, compiled from C here, and the CI policy.

``FAKE_MKL`` stands in for ``libmkl_rt``: MKL's entry points zoo calls and a naive but correct
``cblas_sgemm``. ``WRONG_SGEMM`` exports a ``cblas_sgemm`` that writes a wrong product (what a broken
or mismatched library would do), ``NO_CBLAS`` exports no CBLAS at all: both must be refused and
unloaded. Under ``CI`` a system BLAS that ``.ci/run`` installs (``libblis4-pthread``,
``libopenblas0-pthread``) or a missing C compiler fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

FAKE_MKL = r"""
#include <stdlib.h>
#include <string.h>
/* A real shared library with MKL's entry points that zoo uses: a naive but correct cblas_sgemm
   (row/column major, transposes), the version and thread queries, and what the library saw of
   MKL_THREADING_LAYER when it initialised (as libmkl_rt reads it then). */
static char seen[64] = "unset";
static long calls = 0;
__attribute__((constructor)) static void init(void) {
    const char *v = getenv("MKL_THREADING_LAYER");
    if (v) { strncpy(seen, v, sizeof(seen) - 1); }
}
const char *fake_layer_seen(void) { return seen; }
long fake_sgemm_calls(void) { return calls; }
int MKL_Get_Max_Threads(void) { return 1; }
void MKL_Get_Version_String(char *buf, int len) {
    strncpy(buf, "Intel(R) oneAPI Math Kernel Library Version 2099.1-Product Build 20990101 (zoo test)", len - 1);
    buf[len - 1] = 0;
}
static float at(const float *x, int ld, int row_major, int trans, int i, int j) {
    if (trans) { int t = i; i = j; j = t; }
    return row_major ? x[(long)i * ld + j] : x[i + (long)j * ld];
}
void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc) {
    int rm = order == 101;
    calls++;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) s += (double)at(a, lda, rm, ta != 111, i, p) * at(b, ldb, rm, tb != 111, p, j);
            float *out = rm ? &c[(long)i * ldc + j] : &c[i + (long)j * ldc];
            *out = (float)(alpha * s + (beta == 0.0f ? 0.0 : beta * *out));
        }
}
"""

WRONG_SGEMM = r"""
/* Exports cblas_sgemm, but adds one to every output: plausible-looking and wrong. */
void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) c[order == 101 ? i * ldc + j : i + j * ldc] = 1.0f;
}
int MKL_Get_Max_Threads(void) { return 1; }
void MKL_Get_Version_String(char *buf, int len) { buf[0] = 0; }
"""

NO_CBLAS = r"""
/* A well-formed shared library with no CBLAS interface. */
int not_a_blas(int x) { return x + 1; }
"""

APT = {"blis": "libblis4-pthread", "openblas": "libopenblas0-pthread"}


def missing_blas(family=None):
    """Skip (fail under ``CI``, where ``.ci/run`` installs it) when no ``family`` BLAS is installed."""
    what = APT.get(family, "libblis4-pthread or libopenblas0-pthread")
    message = f"no {family or 'optimised'} BLAS installed here (apt-get install -y {what}; .ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def compiler() -> str:
    """The C compiler (``cc``/``gcc``); .ci/run installs one, so under ``CI`` a missing one fails."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        if os.environ.get("CI"):
            pytest.fail("no C compiler (cc/gcc) to build the test libraries; .ci/run installs g++")
        pytest.skip("no C compiler to build the test libraries")
    return cc


def build(source: str, target: Path) -> Path:
    """Compile ``source`` into the shared library ``target``; returns ``target``."""
    c_file = target.with_name(target.name.split(".so")[0] + ".c")
    c_file.write_text(source)
    subprocess.run([compiler(), "-O1", "-shared", "-fPIC", "-o", str(target), str(c_file)], check=True)
    return target
