"""A fast CPU BLAS for MLX on Linux, put in place before MLX loads.

Why: the Linux ``mlx[cpu]`` wheel links ``libmlx.so`` against the netlib *reference* BLAS it
bundles (``mlx_cpu.libs/libblas-*.so``), and every float32 matmul of MLX's CPU backend is a
``cblas_sgemm`` call into it: about 2-3 GFLOP/s on a 2-core Zen 3, so decode and especially
prefill spend most of their time there. ``libmlx`` takes ``cblas_sgemm`` from the process's global
symbol scope before its own dependencies, so a BLAS loaded with ``RTLD_GLOBAL`` *before*
``import mlx.core`` serves every MLX matmul (same effect as ``LD_PRELOAD``). Loaded after that
import it serves nothing: measured, a GEMM stays at the reference BLAS speed even when the
library is loaded before the first matmul.

Choice (``ZOO_BLAS``):

- ``auto`` (default): the first library found by :func:`candidates`: Intel MKL installed *in this
  Python environment* (the ``mkl`` wheel, ``pip install "zoo-mlx[fast]"``, puts ``libmkl_rt.so.N``
  in ``<sys.prefix>/lib``; see :func:`environment_lib_dirs`), then Debian's BLIS
  (``libblis4-pthread``), then OpenBLAS (``libopenblas0-pthread``, ``-openmp``, ``-serial``), then
  whatever ``ctypes.util.find_library`` finds for ``mkl_rt``/``blis``/``openblas``. MKL first
  because a user who installed it asked for it, and it measured as fast as BLIS at decode and faster
  at prefill; BLIS before OpenBLAS because OpenBLAS 0.3.21's M=1 GEMMs (decode, MoE experts) are
  slow (see ``benchmarks/RESULTS.md``).
- ``mkl`` / ``blis`` / ``openblas``: only that family, found as in ``auto``.
- ``off``: keep MLX's bundled BLAS.
- a path: load exactly that library; a missing or unusable file is a :class:`BlasError`.

Thread counts follow the library's own variables (``BLIS_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
``OMP_NUM_THREADS``) and zoo sets none, except MKL's threading *layer*: unless
``MKL_THREADING_LAYER`` is already set, zoo sets it to ``SEQUENTIAL`` before loading
``libmkl_rt`` (which reads it when it initialises), because MKL's threaded layers (GNU, INTEL)
collapsed to 62-88 tok/s of prefill when another process held a core, where the sequential layer
kept 370. The layer really loaded (``libmkl_sequential`` mapped, one thread) is what gets reported. BLIS then runs single-threaded, on purpose: on the 2-vCPU
machine its two-thread GEMM reached 111 GFLOP/s when idle but fell to 3-4 GFLOP/s as soon as
another process competed for a core, while one thread held 76-88 GFLOP/s
(``benchmarks/bench_blas.py``; MLX's own work is single-threaded anyway). OpenBLAS uses every
core by default. ``OPENBLAS_CORETYPE`` is left alone (some machines set it to dodge kernels that
older OpenBLAS builds get wrong); the record shows the kernel OpenBLAS picked.

Checked, not assumed (:mod:`.blas_lib`, :mod:`.blas_bind`): a candidate is opened privately
(``RTLD_LOCAL``) and must export ``cblas_sgemm`` before it is promoted to the global scope; there
the process's lookup of ``cblas_sgemm`` must land in it and a small product must come out exact.
A candidate that fails is closed again (``dlclose``, before ``mlx.core`` exists, so nothing bound
to it) and the next one is tried. Then
:func:`activate` imports ``mlx.core`` and reads which file ``libmlx``'s ``cblas_sgemm`` slot
really points into (``bound``): ``effective`` is true only when that is the library chosen, and
``checks`` lists what was verified. Activation takes a lock: threads calling it at once load one
library once and all get the same record.

Who activates: the ``zoo`` command does, by default (``ZOO_BLAS=auto``). A Python program that
calls :func:`zoo_registry.load` / ``load_model`` gets no process-wide library unless it opts in,
because loading a BLAS into the global symbol scope (and, for MKL, setting
``MKL_THREADING_LAYER``) changes every later user of BLAS in the process, which a library call
should not do by surprise (``mlx_lm.load`` does nothing of the kind): set ``ZOO_BLAS`` in the
environment, or call :func:`activate` before anything imports ``mlx.core``.

On macOS MLX uses Accelerate and this module does nothing. Importing it does not import MLX;
:func:`activate` does, to verify the binding.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import asdict, dataclass, field
from typing import List, Optional

from ..errors import ZooError, did_you_mean
from .blas_bind import SYMBOL, global_provider, mlx_sgemm_provider
from .blas_find import FAMILIES, candidates, environment_lib_dirs, environment_mkl  # noqa: F401 - were defined here
from .blas_lib import MKL_LAYER_ENV, MKL_LAYERS, Rejected, describe_loaded, family_of, mkl_layer, open_checked  # noqa: F401

ENV = "ZOO_BLAS"
OFF = ("off", "0", "none", "no", "false")
INSTALL_HINT = ('pip install "zoo-mlx[fast]" (Intel MKL, ~1 GB), or apt-get install -y libblis4-pthread '
                "(or libopenblas0-pthread libgfortran5)")


class BlasError(ZooError, RuntimeError):
    """``ZOO_BLAS`` names a library that cannot serve MLX (missing, unloadable, no CBLAS, wrong results)."""


@dataclass
class BlasStatus:
    """What :func:`activate` did, for ``zoo`` to display and for tests to check."""

    mode: str                      # ZOO_BLAS as read: auto, off, blis, openblas or a path
    effective: bool = False        # True when libmlx's cblas_sgemm is bound to ``library`` (checked)
    library: Optional[str] = None  # "MKL", "BLIS" or "OpenBLAS" (or the file name for another BLAS)
    path: Optional[str] = None     # the file loaded (or found preloaded)
    version: Optional[str] = None  # e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64"
    threads: Optional[int] = None  # the library's thread count after activation
    reason: str = ""               # why this library, or why none (or why it does not serve MLX)
    skipped: List[str] = field(default_factory=list)  # candidates found but refused, and why (each closed again)
    threading: Optional[str] = None  # MKL's threading layer in effect ("sequential", "gnu", ...)
    bound: Optional[str] = None    # the file libmlx's cblas_sgemm is bound to (read once mlx.core is loaded)
    checks: List[str] = field(default_factory=list)  # what was verified about ``path``, in order

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line: ``BLAS: OpenBLAS 0.3.21 ... (2 threads) from /usr/lib/...`` or why none."""
        if self.effective:
            threads = f", {self.threads} thread{'' if self.threads == 1 else 's'}" if self.threads else ""
            layer = f", {self.threading} layer" if self.threading else ""
            bound = "; MLX's cblas_sgemm bound to it" if self.bound and self.bound == self.path else ""
            return f"BLAS: {self.version or self.library} ({self.path}{threads}{layer}{bound})"
        if self.path:
            return f"BLAS: not serving MLX ({self.reason})"
        return f"BLAS: MLX's bundled reference BLAS ({self.reason})"


_LOCK = threading.Lock()
_STATUS: Optional[BlasStatus] = None
_HANDLE = None  # keeps the loaded library alive for the life of the process
_SET_BY_ZOO: dict = {}  # environment variables zoo set itself (MKL_THREADING_LAYER), for the record


def _read_mode() -> str:
    return os.environ.get(ENV, "auto").strip() or "auto"


def requested() -> bool:
    """Whether the user asked for a BLAS provider in the environment (``ZOO_BLAS`` is set)."""
    return ENV in os.environ


def activate_if_requested() -> Optional[BlasStatus]:
    """What zoo's library entry points (``load``, ``load_model``) call: :func:`activate` when the user
    opted in (``ZOO_BLAS`` set, or :func:`activate` already ran), else nothing (``None``)."""
    if _STATUS is not None or requested():
        return activate()
    return None


def activate(*, verify: bool = True) -> BlasStatus:
    """Load the BLAS that ``ZOO_BLAS`` asks for, once per process, check it, and say what happened.

    Call before anything imports ``mlx.core``; later calls (from any thread) return the first
    record. With ``verify`` (the default) it then imports ``mlx.core`` and records which file
    ``libmlx``'s ``cblas_sgemm`` is bound to; ``effective`` is true only if that is the library
    loaded. Raises :class:`BlasError` when ``ZOO_BLAS`` names a path or family that cannot be used
    (``auto`` never raises: it records why no library was taken).
    """
    global _STATUS
    with _LOCK:
        if _STATUS is None:
            status = _select(_read_mode())
            if verify:
                _check_binding(status)
            _STATUS = status
        return _STATUS


def _select(mode: str) -> BlasStatus:
    status = BlasStatus(mode=mode)
    lowered = mode.lower()
    if lowered in OFF:
        status.reason = f"{ENV}={mode}"
        return status
    if not sys.platform.startswith("linux"):
        status.reason = "MLX uses Accelerate on macOS; nothing to load" if sys.platform == "darwin" else f"no BLAS selection on {sys.platform}"
        return status
    if lowered not in ("auto",) + FAMILIES and not os.path.exists(os.path.expanduser(mode)):
        raise BlasError(
            f"{ENV}={mode}: not auto, off, mkl, blis or openblas, and no such file"
            + did_you_mean(lowered, ("auto", "off") + FAMILIES),
            hint=f"set {ENV} to auto, off, mkl, blis, openblas or the path of a CBLAS library (libmkl_rt.so.3, libblis.so.4, libopenblas.so.0)",
        )
    preloaded = global_provider()
    if "mlx.core" in sys.modules:
        status.reason = (
            "mlx.core was imported before zoo_registry.runtime.blas.activate(); MLX keeps the BLAS it "
            "bound then, so ZOO_BLAS has no effect in this process"
        )
        if preloaded:
            status.reason += f" ({SYMBOL} in the global scope comes from {preloaded}; it serves MLX only if it was loaded before mlx.core)"
        return status
    if preloaded:
        import ctypes

        handle = ctypes.CDLL(preloaded)
        _take(status, handle, preloaded, family_of(handle, preloaded),
              f"{SYMBOL} already in the global scope (LD_PRELOAD or an earlier RTLD_GLOBAL load); left as is")
        status.checks.append(f"the process resolves {SYMBOL} to it")
        return status
    if lowered not in ("auto",) + FAMILIES:
        path = os.path.expanduser(mode)
        try:
            handle, family, _SET_BY_ZOO[MKL_LAYER_ENV] = open_checked(path, status.checks)
        except Rejected as why:
            raise BlasError(f"{ENV}={mode}: {why}", hint=f"set {ENV}=auto to pick a working system BLAS, or {ENV}=off") from None
        _take(status, handle, path, family, f"{ENV} names this file")
        return status
    tried = set()
    for family, path in candidates():
        if (lowered != "auto" and family != lowered) or path in tried or (os.path.isabs(path) and not os.path.exists(path)):
            continue
        tried.add(path)
        checks: List[str] = []
        try:
            handle, family, _SET_BY_ZOO[MKL_LAYER_ENV] = open_checked(path, checks)
        except Rejected as why:
            status.skipped.append(str(why))
            continue
        status.checks = checks
        _take(status, handle, path, family, f"{ENV}={mode}: first usable of the known locations")
        return status
    if lowered != "auto":
        detail = "; ".join(status.skipped) or "not installed"
        raise BlasError(f"{ENV}={mode}: no usable {mode} library found ({detail})",
                        hint=f"install it ({INSTALL_HINT}), or set {ENV}=auto or {ENV}=off")
    status.reason = "no optimised BLAS found" + (f" ({'; '.join(status.skipped)})" if status.skipped else "") + f"; install one with: {INSTALL_HINT}"
    return status


def _take(status: BlasStatus, handle, path: str, family: str, reason: str) -> None:
    global _HANDLE
    status.library, status.version, status.threads = describe_loaded(handle, family)
    status.path, status.effective, status.reason = os.path.realpath(path), True, reason
    if family == "mkl":
        status.threading = mkl_layer()
        chosen = os.environ.get(MKL_LAYER_ENV, "")
        status.reason += f"; {MKL_LAYER_ENV}={chosen}" + (" (set by zoo)" if _SET_BY_ZOO.get(MKL_LAYER_ENV) else " (set by you)")
    _HANDLE = handle


def _check_binding(status: BlasStatus) -> None:
    """Import ``mlx.core`` and record where its ``cblas_sgemm`` went; a mismatch is not effective."""
    if not status.effective:
        return
    try:
        import mlx.core  # noqa: F401 - Python loads extensions RTLD_NOW: this binds libmlx's cblas_sgemm
    except ImportError as error:
        status.reason += f"; not verified: mlx.core cannot be imported ({error})"
        return
    status.bound = mlx_sgemm_provider()
    if status.bound is None:
        status.reason += f"; not verified: libmlx's {SYMBOL} binding cannot be read on this platform"
    elif status.bound != status.path:
        status.effective = False
        status.reason = (f"{status.path} was loaded, but MLX's {SYMBOL} is bound to {status.bound}; "
                         "load the BLAS before anything imports mlx.core (or use LD_PRELOAD)")
    else:
        status.checks.append(f"libmlx's {SYMBOL} is bound to it")


def status() -> BlasStatus:
    """The record of :func:`activate`, or one saying it has not run (MLX then uses its own BLAS).

    Once ``mlx.core`` is imported, the record also says which file ``libmlx``'s ``cblas_sgemm`` is
    bound to (``bound``, read from its GOT by :mod:`.blas_bind`); a library zoo loaded that MLX does
    not call is then reported as not effective, with the reason."""
    with _LOCK:
        if _STATUS is not None:
            if _STATUS.bound is None and _STATUS.effective and "mlx.core" in sys.modules:
                _check_binding(_STATUS)
            elif _STATUS.bound is None and "mlx.core" in sys.modules:
                _STATUS.bound = mlx_sgemm_provider()
            return _STATUS
    return BlasStatus(mode=_read_mode(), reason=(
        "zoo_registry.runtime.blas.activate() has not run in this process: the zoo command runs it; a Python "
        f"program opts in with {ENV}=auto (or a family or path) in the environment, or by calling activate() "
        "before importing mlx.core"))
