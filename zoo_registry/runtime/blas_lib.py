"""Opening one candidate BLAS: privately first, checked, made global, checked again, or closed.

A library loaded with ``RTLD_GLOBAL`` serves every later symbol lookup in the process and cannot be
taken back safely once anything bound to it, so a candidate is first opened ``RTLD_LOCAL`` (its
symbols reachable only through its own handle) and must export ``cblas_sgemm``. Then it is promoted
to the global scope (``dlopen(path, RTLD_NOLOAD | RTLD_GLOBAL)``, glibc's documented way to promote
an already loaded object), the process's own lookup of ``cblas_sgemm`` must land in it, and that
function must compute a small product exactly in both weight layouts MLX uses (``x @ W`` and
``x @ W.T``). The product runs after the promotion on purpose: MKL's ``libmkl_rt`` loads its
interface library (``libmkl_intel_lp64``, which also exports ``cblas_sgemm``) globally on its first
call, and if that happened while ``libmkl_rt`` was still private, that library would come first in
the global scope (measured: every later candidate then failed the lookup check too). A candidate
that fails any step is ``dlclose``-d (both handles) before ``mlx.core`` exists, so nothing bound to
it: measured with ``/proc/self/maps``, BLIS, OpenBLAS and stand-in libraries are unmapped again
(``tests/test_blas_verify.py``).
"""

from __future__ import annotations

import ctypes
import os
import re
from pathlib import Path
from typing import List, Optional, Tuple

from .blas_bind import SYMBOL, global_provider

MKL_LAYER_ENV = "MKL_THREADING_LAYER"
MKL_LAYERS = {"libmkl_sequential": "sequential", "libmkl_gnu_thread": "gnu", "libmkl_intel_thread": "intel",
              "libmkl_tbb_thread": "tbb"}  # the layer library libmkl_rt loads -> MKL_THREADING_LAYER value
RTLD_NOLOAD = getattr(os, "RTLD_NOLOAD", 4)
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112  # CBLAS enums (cblas.h)


class Rejected(Exception):
    """A candidate that cannot serve MLX; the message says why. It is no longer loaded."""


def close(handle) -> None:
    """``dlclose`` one reference to ``handle``'s library (ctypes itself never closes)."""
    import _ctypes

    _ctypes.dlclose(handle._handle)


def family_of(handle, path: str) -> str:
    if hasattr(handle, "MKL_Get_Version_String"):
        return "mkl"
    if hasattr(handle, "openblas_get_config"):
        return "openblas"
    if hasattr(handle, "bli_info_get_version_str"):
        return "blis"
    return Path(path).name


def describe_loaded(handle, family: str) -> Tuple[str, Optional[str], Optional[int]]:
    """``(library name, version string, threads)`` of a loaded library."""
    if family == "openblas":
        handle.openblas_get_config.restype = ctypes.c_char_p
        version = handle.openblas_get_config().decode()
        if hasattr(handle, "openblas_get_corename"):
            handle.openblas_get_corename.restype = ctypes.c_char_p
            core = handle.openblas_get_corename().decode()
            if core and core.lower() not in version.lower():
                version += f" (kernel {core})"
        if os.environ.get("OPENBLAS_CORETYPE"):
            version += f" [OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']}]"
        return "OpenBLAS", version, int(handle.openblas_get_num_threads())
    if family == "blis":
        handle.bli_info_get_version_str.restype = ctypes.c_char_p
        version = "BLIS " + handle.bli_info_get_version_str().decode()
        handle.bli_thread_get_num_threads.restype = ctypes.c_long
        return "BLIS", version, max(1, int(handle.bli_thread_get_num_threads()))  # -1: unset, i.e. one
    if family == "mkl":
        buffer = ctypes.create_string_buffer(256)
        handle.MKL_Get_Version_String(buffer, len(buffer))  # also makes libmkl_rt load its layers
        text = buffer.value.decode(errors="replace")
        number, build = re.search(r"Version ([\d.]+)", text), re.search(r"Build (\d+)", text)
        version = "MKL " + (number.group(1) if number else text) + (f" (build {build.group(1)})" if build else "")
        return "MKL", version, int(handle.MKL_Get_Max_Threads())
    return family, None, None


def mkl_layer() -> Optional[str]:
    """MKL's threading layer in this process, from the layer library ``libmkl_rt`` mapped."""
    with open("/proc/self/maps") as maps:
        names = {os.path.basename(line.split()[-1]) for line in maps if "libmkl_" in line}
    layers = sorted({layer for prefix, layer in MKL_LAYERS.items() if any(n.startswith(prefix) for n in names)})
    return "+".join(layers) or None


def gemm_problem(handle) -> Optional[str]:
    """Run ``cblas_sgemm`` on a 3x4 @ 4x2 product of small integers (exact in float32), with ``W``
    and with ``W`` transposed; ``None`` when both are exact, else what came back."""
    sgemm = handle[SYMBOL]
    sgemm.restype = None
    sgemm.argtypes = [ctypes.c_int] * 6 + [ctypes.c_float, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                           ctypes.c_int, ctypes.c_float, ctypes.c_void_p, ctypes.c_int]
    M, N, K = 3, 2, 4
    a = [float(i - 5) for i in range(M * K)]      # M x K, row major
    b = [float(2 * i - 3) for i in range(K * N)]  # K x N, row major
    bt = [b[p * N + j] for j in range(N) for p in range(K)]  # the same matrix stored N x K
    expected = [sum(a[i * K + p] * b[p * N + j] for p in range(K)) for i in range(M) for j in range(N)]
    floats = ctypes.c_float * (M * N)
    for trans, weights, ldb in ((NO_TRANS, b, N), (TRANS, bt, K)):
        out = floats(*[7.0] * (M * N))  # beta = 0: whatever is there must be overwritten
        sgemm(ROW_MAJOR, NO_TRANS, trans, M, N, K, 1.0, (ctypes.c_float * (M * K))(*a), K,
              (ctypes.c_float * (K * N))(*weights), ldb, 0.0, out, N)
        if list(out) != expected:
            layout = "x @ W" if trans == NO_TRANS else "x @ W.T"
            return f"its {SYMBOL} computed a 3x4 @ 4x2 product ({layout}) as {list(out)}, not {expected}"
    return None


def why_unloadable(path: str, error: Exception) -> str:
    text = str(error)
    if "libgfortran" in text:
        return f"{path} needs libgfortran5 ({text}); install it with: apt-get install -y libgfortran5"
    return f"{path} could not be loaded: {text}"


def open_checked(path: str, checks: List[str]) -> Tuple[object, str, bool]:
    """Open ``path`` privately, check it, promote it to the global scope; ``(handle, family,
    whether zoo set MKL_THREADING_LAYER)``.

    Appends each check passed to ``checks``. Raises :class:`Rejected` with the reason, after closing
    the library and undoing the ``MKL_THREADING_LAYER`` it set, when the library is unusable.
    For MKL's single dynamic library, ``MKL_THREADING_LAYER=SEQUENTIAL`` is put in the environment
    first unless the user chose a layer: ``libmkl_rt`` reads it when it initialises."""
    set_layer = "mkl_rt" in os.path.basename(path) and not os.environ.get(MKL_LAYER_ENV)
    if set_layer:
        os.environ[MKL_LAYER_ENV] = "SEQUENTIAL"
    handles = []
    try:
        try:
            handles.append(ctypes.CDLL(path))  # RTLD_LOCAL | RTLD_NOW: its symbols stay private
        except OSError as error:
            raise Rejected(why_unloadable(path, error)) from None
        private = handles[0]
        if not hasattr(private, SYMBOL):
            raise Rejected(f"{path} does not export {SYMBOL} (no CBLAS interface), so MLX could not use it")
        checks.append(f"exports {SYMBOL}")
        handles.append(ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL | RTLD_NOLOAD))
        provider, real = global_provider(), os.path.realpath(path)
        if provider != real:
            raise Rejected(f"{path} was made global, but the process resolves {SYMBOL} to {provider or 'nothing'}")
        checks.append(f"the process resolves {SYMBOL} to it")
        problem = gemm_problem(private)
        if problem:
            raise Rejected(f"{path}: {problem}")
        checks.append(f"{SYMBOL} computes x @ W and x @ W.T exactly (3x4 @ 4x2)")
        return handles[-1], family_of(private, path), set_layer
    except Rejected:
        for handle in reversed(handles):
            close(handle)
        if set_layer:
            os.environ.pop(MKL_LAYER_ENV, None)
        raise
