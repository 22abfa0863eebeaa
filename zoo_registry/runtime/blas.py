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

- ``auto`` (default): the first library found by :func:`candidates`: Debian's BLIS
  (``libblis4-pthread``), then OpenBLAS (``libopenblas0-pthread``, ``-openmp``, ``-serial``),
  then whatever ``ctypes.util.find_library`` finds for ``blis``/``openblas``. BLIS comes first
  because it measured faster on this kind of machine for both the prefill GEMMs and the M=1
  GEMMs of decode and of MoE experts (see ``benchmarks/RESULTS.md``).
- ``blis`` / ``openblas``: only that family, found as in ``auto``.
- ``off``: keep MLX's bundled BLAS.
- a path: load exactly that library; a missing or unusable file is a :class:`BlasError`.

Thread counts follow the library's own variables (``BLIS_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
``OMP_NUM_THREADS``) and zoo sets none. BLIS then runs single-threaded, on purpose: on the 2-vCPU
machine its two-thread GEMM reached 111 GFLOP/s when idle but fell to 3-4 GFLOP/s as soon as
another process competed for a core, while one thread held 76-88 GFLOP/s
(``benchmarks/bench_blas.py``; MLX's own work is single-threaded anyway). OpenBLAS uses every
core by default. ``OPENBLAS_CORETYPE`` is left alone (some machines set it to dodge kernels that
older OpenBLAS builds get wrong); the record shows the kernel OpenBLAS picked.

On macOS MLX uses Accelerate and this module does nothing. Importing it does not import MLX.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

from ..errors import ZooError, did_you_mean

ENV = "ZOO_BLAS"
OFF = ("off", "0", "none", "no", "false")
FAMILIES = ("blis", "openblas")
SYMBOL = "cblas_sgemm"  # what libmlx imports for every float32 matmul on the CPU


class BlasError(ZooError, RuntimeError):
    """``ZOO_BLAS`` names a library that cannot serve MLX (missing, unloadable, no CBLAS)."""


@dataclass
class BlasStatus:
    """What :func:`activate` did, for ``zoo`` to display and for tests to check."""

    mode: str                      # ZOO_BLAS as read: auto, off, blis, openblas or a path
    effective: bool = False        # True when MLX's matmuls go to ``library``
    library: Optional[str] = None  # "BLIS" or "OpenBLAS" (or the file name for another BLAS)
    path: Optional[str] = None     # the file loaded (or found preloaded)
    version: Optional[str] = None  # e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64"
    threads: Optional[int] = None  # the library's thread count after activation
    reason: str = ""               # why this library, or why none
    skipped: List[str] = field(default_factory=list)  # candidates found but not usable, and why

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line: ``BLAS: OpenBLAS 0.3.21 ... (2 threads) from /usr/lib/...`` or why none."""
        if self.effective:
            threads = f", {self.threads} thread{'' if self.threads == 1 else 's'}" if self.threads else ""
            return f"BLAS: {self.version or self.library} ({self.path}{threads})"
        return f"BLAS: MLX's bundled reference BLAS ({self.reason})"


_STATUS: Optional[BlasStatus] = None
_HANDLE = None  # keeps the loaded library alive for the life of the process


def _multiarch() -> str:
    return {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu", "arm64": "aarch64-linux-gnu"}.get(
        platform.machine(), f"{platform.machine()}-linux-gnu"
    )


def candidates() -> List[Tuple[str, str]]:
    """``(family, path)`` in ``auto`` order; the Debian paths first, then ``find_library``."""
    lib = Path("/usr/lib") / _multiarch()
    found = [
        ("blis", str(lib / "blis-pthread" / "libblis.so.4")),
        ("blis", str(lib / "blis-openmp" / "libblis.so.4")),
        ("openblas", str(lib / "openblas-pthread" / "libopenblas.so.0")),
        ("openblas", str(lib / "openblas-openmp" / "libopenblas.so.0")),
        ("openblas", str(lib / "openblas-serial" / "libopenblas.so.0")),
    ]
    for family in FAMILIES:
        name = ctypes.util.find_library(family)
        if name:
            found.append((family, name))
    return found



class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def global_provider() -> Optional[str]:
    """The file that serves ``cblas_sgemm`` from the global symbol scope (``LD_PRELOAD`` or an
    ``RTLD_GLOBAL`` load), or None; MLX's bundled BLAS is loaded privately and never shows here."""
    try:
        addr = ctypes.cast(getattr(ctypes.CDLL(None), SYMBOL), ctypes.c_void_p).value
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except (AttributeError, OSError):
        return None
    info = _DlInfo()
    if not libc.dladdr(ctypes.c_void_p(addr), ctypes.byref(info)) or not info.dli_fname:
        return None
    return os.path.realpath(info.dli_fname.decode())


def _family_of(handle, path: str) -> str:
    if hasattr(handle, "openblas_get_config"):
        return "openblas"
    if hasattr(handle, "bli_info_get_version_str"):
        return "blis"
    return Path(path).name


def _describe_loaded(handle, family: str) -> Tuple[str, Optional[str], Optional[int]]:
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
    return family, None, None


def _load(path: str) -> Tuple[object, str]:
    """``dlopen`` with ``RTLD_GLOBAL``; raises ``OSError`` or ``AttributeError`` (no CBLAS)."""
    handle = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    getattr(handle, SYMBOL)  # AttributeError when the library has no CBLAS interface
    return handle, _family_of(handle, path)


def _why_unloadable(path: str, error: Exception) -> str:
    if isinstance(error, AttributeError):
        return f"{path} does not export {SYMBOL} (no CBLAS interface), so MLX could not use it"
    text = str(error)
    if "libgfortran" in text:
        return f"{path} needs libgfortran5 ({text}); install it with: apt-get install -y libgfortran5"
    return f"{path} could not be loaded: {text}"


def _read_mode() -> str:
    return os.environ.get(ENV, "auto").strip() or "auto"


def activate() -> BlasStatus:
    """Load the BLAS that ``ZOO_BLAS`` asks for, once per process, and say what happened.

    Call before anything imports ``mlx.core``; later calls return the first record. Raises
    :class:`BlasError` when ``ZOO_BLAS`` names a path or family that cannot be used (``auto``
    never raises: it records why no library was taken).
    """
    global _STATUS, _HANDLE
    if _STATUS is not None:
        return _STATUS
    mode = _read_mode()
    status = BlasStatus(mode=mode)
    if mode.lower() in OFF:
        status.reason = f"{ENV}={mode}"
        _STATUS = status
        return status
    if not sys.platform.startswith("linux"):
        status.reason = "MLX uses Accelerate on macOS; nothing to load" if sys.platform == "darwin" else f"no BLAS selection on {sys.platform}"
        _STATUS = status
        return status
    lowered = mode.lower()
    if lowered not in ("auto",) + FAMILIES and not os.path.exists(os.path.expanduser(mode)):
        raise BlasError(
            f"{ENV}={mode}: not auto, off, blis or openblas, and no such file"
            + did_you_mean(lowered, ("auto", "off") + FAMILIES),
            hint=f"set {ENV} to auto, off, blis, openblas or the path of a CBLAS library (libblis.so.4, libopenblas.so.0)",
        )
    preloaded = global_provider()
    if "mlx.core" in sys.modules:
        status.reason = (
            "mlx.core was imported before zoo_registry.runtime.blas.activate(); MLX keeps the BLAS it "
            "bound then, so ZOO_BLAS has no effect in this process"
        )
        if preloaded:
            status.reason += f" ({SYMBOL} in the global scope comes from {preloaded}; it serves MLX only if it was loaded before mlx.core)"
        _STATUS = status
        return status
    if preloaded:
        handle = ctypes.CDLL(preloaded)
        family = _family_of(handle, preloaded)
        status.library, status.version, status.threads = _describe_loaded(handle, family)
        status.path, status.effective = preloaded, True
        status.reason = f"{SYMBOL} already in the global scope (LD_PRELOAD or an earlier RTLD_GLOBAL load); left as is"
        _HANDLE, _STATUS = handle, status
        return status

    if lowered in ("auto",) + FAMILIES:
        wanted = [(f, p) for f, p in candidates() if lowered == "auto" or f == lowered]
        tried = set()
        for family, path in wanted:
            if path in tried or (os.path.isabs(path) and not os.path.exists(path)):
                continue
            tried.add(path)
            try:
                handle, family = _load(path)
            except (OSError, AttributeError) as error:
                status.skipped.append(_why_unloadable(path, error))
                continue
            _take(status, handle, path, family, f"{ENV}={mode}: first usable of the known locations")
            return status
        hint = "apt-get install -y libblis4-pthread (or libopenblas0-pthread libgfortran5)"
        if lowered != "auto":
            detail = "; ".join(status.skipped) or "not installed"
            raise BlasError(f"{ENV}={mode}: no usable {mode} library found ({detail})",
                            hint=f"install it ({hint}), or set {ENV}=auto or {ENV}=off")
        status.reason = "no optimised BLAS found" + (f" ({'; '.join(status.skipped)})" if status.skipped else "") + f"; install one with: {hint}"
        _STATUS = status
        return status

    path = os.path.expanduser(mode)
    try:
        handle, family = _load(path)
    except (OSError, AttributeError) as error:
        raise BlasError(f"{ENV}={mode}: {_why_unloadable(path, error)}",
                        hint=f"set {ENV}=auto to pick a working system BLAS, or {ENV}=off") from None
    _take(status, handle, path, family, f"{ENV} names this file")
    return status


def _take(status: BlasStatus, handle, path: str, family: str, reason: str) -> None:
    global _STATUS, _HANDLE
    status.library, status.version, status.threads = _describe_loaded(handle, family)
    status.path, status.effective, status.reason = os.path.realpath(path), True, reason
    _HANDLE, _STATUS = handle, status


def status() -> BlasStatus:
    """The record of :func:`activate`, or one saying it has not run (MLX then uses its own BLAS)."""
    if _STATUS is not None:
        return _STATUS
    return BlasStatus(mode=_read_mode(), reason="zoo_registry.runtime.blas.activate() has not run in this process")
