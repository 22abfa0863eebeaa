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

After ``mlx.core`` is imported, :func:`status` checks which file ``libmlx``'s ``cblas_sgemm``
was really bound to (:mod:`.blas_bind`) and records it as ``bound``; a library that was loaded but
does not serve MLX is reported as not effective.

On macOS MLX uses Accelerate and this module does nothing. Importing it does not import MLX.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import re
import site
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

from ..errors import ZooError, did_you_mean

ENV = "ZOO_BLAS"
OFF = ("off", "0", "none", "no", "false")
FAMILIES = ("mkl", "blis", "openblas")
MKL_LAYER_ENV = "MKL_THREADING_LAYER"
MKL_LAYERS = {"libmkl_sequential": "sequential", "libmkl_gnu_thread": "gnu", "libmkl_intel_thread": "intel",
              "libmkl_tbb_thread": "tbb"}  # the layer library libmkl_rt loads -> MKL_THREADING_LAYER value
SYMBOL = "cblas_sgemm"  # what libmlx imports for every float32 matmul on the CPU


class BlasError(ZooError, RuntimeError):
    """``ZOO_BLAS`` names a library that cannot serve MLX (missing, unloadable, no CBLAS)."""


@dataclass
class BlasStatus:
    """What :func:`activate` did, for ``zoo`` to display and for tests to check."""

    mode: str                      # ZOO_BLAS as read: auto, off, blis, openblas or a path
    effective: bool = False        # True when MLX's matmuls go to ``library``
    library: Optional[str] = None  # "MKL", "BLIS" or "OpenBLAS" (or the file name for another BLAS)
    path: Optional[str] = None     # the file loaded (or found preloaded)
    version: Optional[str] = None  # e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64"
    threads: Optional[int] = None  # the library's thread count after activation
    reason: str = ""               # why this library, or why none
    skipped: List[str] = field(default_factory=list)  # candidates found but not usable, and why
    threading: Optional[str] = None  # MKL's threading layer in effect ("sequential", "gnu", ...)
    bound: Optional[str] = None    # the file libmlx's cblas_sgemm is bound to (checked after mlx.core loads)

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line: ``BLAS: OpenBLAS 0.3.21 ... (2 threads) from /usr/lib/...`` or why none."""
        if self.effective:
            threads = f", {self.threads} thread{'' if self.threads == 1 else 's'}" if self.threads else ""
            layer = f", {self.threading} layer" if self.threading else ""
            bound = "; MLX's cblas_sgemm bound to it" if self.bound and self.bound == self.path else ""
            return f"BLAS: {self.version or self.library} ({self.path}{threads}{layer}{bound})"
        return f"BLAS: MLX's bundled reference BLAS ({self.reason})"


_STATUS: Optional[BlasStatus] = None
_HANDLE = None  # keeps the loaded library alive for the life of the process
_SET_BY_ZOO: dict = {}  # environment variables zoo set itself (MKL_THREADING_LAYER), for the record


def _multiarch() -> str:
    return {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu", "arm64": "aarch64-linux-gnu"}.get(
        platform.machine(), f"{platform.machine()}-linux-gnu"
    )


def environment_lib_dirs() -> List[Path]:
    """The ``lib`` folders of this Python environment that pip fills from wheels' data files:
    ``<sys.prefix>/lib`` (a venv or conda env; where the ``mkl`` wheel puts ``libmkl_rt.so.N``) and,
    for ``pip install --user`` when this interpreter reads the user site, ``<site.USER_BASE>/lib``."""
    dirs = [Path(sys.prefix) / "lib"]
    user = site.getuserbase() if getattr(site, "ENABLE_USER_SITE", False) else None
    if user and Path(user, "lib") not in dirs:
        dirs.append(Path(user) / "lib")
    return [d for d in dirs if d.is_dir()]


def _version_key(path: Path) -> Tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.name.split(".so", 1)[-1]))


def environment_mkl() -> List[str]:
    """``libmkl_rt.so*`` in :func:`environment_lib_dirs`, newest soname first per folder."""
    found = []
    for folder in environment_lib_dirs():
        found += [str(p) for p in sorted(folder.glob("libmkl_rt.so*"), key=_version_key, reverse=True)]
    return found


def candidates() -> List[Tuple[str, str]]:
    """``(family, path)`` in ``auto`` order: MKL in this environment, the Debian paths, then
    ``find_library``."""
    lib = Path("/usr/lib") / _multiarch()
    found = [("mkl", path) for path in environment_mkl()] + [
        ("blis", str(lib / "blis-pthread" / "libblis.so.4")),
        ("blis", str(lib / "blis-openmp" / "libblis.so.4")),
        ("openblas", str(lib / "openblas-pthread" / "libopenblas.so.0")),
        ("openblas", str(lib / "openblas-openmp" / "libopenblas.so.0")),
        ("openblas", str(lib / "openblas-serial" / "libopenblas.so.0")),
    ]
    for family in FAMILIES:
        name = ctypes.util.find_library("mkl_rt" if family == "mkl" else family)
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
    if hasattr(handle, "MKL_Get_Version_String"):
        return "mkl"
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


def _load(path: str) -> Tuple[object, str]:
    """``dlopen`` with ``RTLD_GLOBAL``; raises ``OSError`` or ``AttributeError`` (no CBLAS).

    For MKL's single dynamic library, ``MKL_THREADING_LAYER=SEQUENTIAL`` is put in the environment
    first unless the user chose a layer: ``libmkl_rt`` reads it when it initialises."""
    if "mkl_rt" in os.path.basename(path) and not os.environ.get(MKL_LAYER_ENV):
        os.environ[MKL_LAYER_ENV] = "SEQUENTIAL"
        _SET_BY_ZOO[MKL_LAYER_ENV] = True
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
        _STATUS = status
        return status
    if preloaded:
        handle = ctypes.CDLL(preloaded)
        family = _family_of(handle, preloaded)
        status.library, status.version, status.threads = _describe_loaded(handle, family)
        status.threading = mkl_layer() if family == "mkl" else None
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
        hint = 'pip install "zoo-mlx[fast]" (Intel MKL, ~1 GB), or apt-get install -y libblis4-pthread (or libopenblas0-pthread libgfortran5)'
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
    if family == "mkl":
        status.threading = mkl_layer()
        chosen = os.environ.get(MKL_LAYER_ENV, "")
        status.reason += f"; {MKL_LAYER_ENV}={chosen}" + (" (set by zoo)" if _SET_BY_ZOO.get(MKL_LAYER_ENV) else " (set by you)")
    _HANDLE, _STATUS = handle, status


def status() -> BlasStatus:
    """The record of :func:`activate`, or one saying it has not run (MLX then uses its own BLAS).

    Once ``mlx.core`` is imported, the record also says which file ``libmlx``'s ``cblas_sgemm`` is
    bound to (``bound``, read from its GOT by :mod:`.blas_bind`); a library zoo loaded that MLX does
    not call is then reported as not effective, with the reason."""
    if _STATUS is not None:
        if _STATUS.bound is None and "mlx.core" in sys.modules:
            from .blas_bind import mlx_sgemm_provider

            _STATUS.bound = mlx_sgemm_provider()
            if _STATUS.effective and _STATUS.bound and _STATUS.bound != _STATUS.path:
                _STATUS.effective = False
                _STATUS.reason = (f"{_STATUS.path} was loaded, but MLX's {SYMBOL} is bound to {_STATUS.bound}; "
                                  "load the BLAS before anything imports mlx.core (or use LD_PRELOAD)")
        return _STATUS
    return BlasStatus(mode=_read_mode(), reason="zoo_registry.runtime.blas.activate() has not run in this process")
