"""zoo's CPU matmul kernels: an MLX C++ extension, used transparently where it is built.

MLX's CPU backend multiplies quantized weights (``quantized_matmul``, ``gather_qmm``) in a scalar
dequantize-multiply loop (~3 GFLOP/s whatever the shape) and bfloat16/float16 weights with
generic kernels. ``csrc/`` holds zoo's replacements as MLX custom primitives (a ``Primitive``
with ``eval_cpu``, see MLX's "Custom Extensions" docs): SIMD matrix-vector and tiled
matrix-matrix products for MLX's affine 4/8-bit format (group sizes 32/64/128), the gather form
of the MoE experts, and half-precision weights; AVX-512 / AVX2 / NEON / portable code chosen at
run time, multi-threaded over output rows (``ZOO_THREADS``). ``pip install .`` builds them
(``setup.py``); see ``docs/kernels.md``.

This module loads the extension and decides per call: the kernels run when it loaded, the
default device is the CPU and the call is one they implement; otherwise MLX's own op runs. The
dispatch functions take MLX's arguments and return what MLX's op returns.

``ZOO_KERNELS=off`` disables them (MLX's ops everywhere).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import mlx.core as mx

QUANT_BITS = (4, 8)
QUANT_GROUPS = (32, 64, 128)
FLOATS = (mx.float32, mx.bfloat16, mx.float16)
HALF = (mx.bfloat16, mx.float16)


@dataclass
class KernelStatus:
    """Whether zoo's CPU kernels are in use, for ``zoo load`` to display and tests to check."""

    available: bool = False        # the extension loaded and passed its self-check
    isa: Optional[str] = None      # "avx512bf16", "avx512", "avx2", "neon" or "generic"
    threads: Optional[int] = None  # ZOO_THREADS (default: the CPUs this process may use, at most 8)
    path: Optional[str] = None     # the extension module's file
    mlx_build: Optional[str] = None  # the MLX version it was compiled against
    reason: str = ""               # why it is not available

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line: ``zoo kernels (avx512, 2 threads)`` or why MLX's own ops run."""
        if self.available:
            return f"zoo kernels ({self.isa}, {self.threads} thread{'' if self.threads == 1 else 's'})"
        return f"MLX's own ops ({self.reason})"


_EXT = None
_STATUS: Optional[KernelStatus] = None
_DISABLED = 0  # > 0 inside disabled()


def _mlx_version() -> str:
    return mx.__version__.split(".dev")[0].split("+")[0]


def _self_check(ext) -> None:
    """One tiny product through each entry point, compared with MLX (catches a binding mismatch)."""
    w = mx.arange(64 * 64, dtype=mx.float32).reshape(64, 64) % 7 - 3
    x = mx.arange(2 * 64, dtype=mx.float32).reshape(2, 64) % 5 - 2
    wq, s, b = mx.quantize(w, group_size=32, bits=4)
    ref = mx.quantized_matmul(x, wq, s, b, transpose=True, group_size=32, bits=4)
    got = ext.qmm(x, wq, s, b, 32, 4, stream=mx.cpu)
    half = ext.half_mm(x, w.astype(mx.bfloat16), stream=mx.cpu)
    if not (mx.allclose(got, ref, atol=1e-3).item() and mx.allclose(half, x @ w.T, atol=1e-3).item()):
        raise RuntimeError("self-check: results differ from MLX's")


def _load() -> KernelStatus:
    global _EXT
    if os.environ.get("ZOO_KERNELS", "").strip().lower() in ("0", "off", "false", "no"):
        return KernelStatus(reason="ZOO_KERNELS=off")
    try:
        from . import _ext as ext
    except ImportError as e:
        built = any(p.name.startswith("_ext.") for p in Path(__file__).parent.iterdir())
        if built:  # present but not loadable (a missing libmlx, another Python...)
            return KernelStatus(reason=f"extension cannot load: {e}")
        err = Path(__file__).with_name("_build_error.txt")
        text = err.read_text().strip() if err.is_file() else ""
        why = f" ({text.splitlines()[0]}; details in {err})" if text else ""
        return KernelStatus(reason=f"not built at install{why}; to build them, install a C++ compiler and run "
                                   "pip install --force-reinstall --no-deps .")
    status = KernelStatus(path=getattr(ext, "__file__", None), mlx_build=ext.MLX_BUILD_VERSION)
    running = ext.mlx_runtime_version().split(".dev")[0]
    if ext.MLX_BUILD_VERSION != running or running != _mlx_version():
        status.reason = (f"built against mlx {ext.MLX_BUILD_VERSION}, running mlx {_mlx_version()}; rebuild: "
                         "pip install --force-reinstall --no-deps --no-build-isolation .")
        return status
    try:
        with mx.stream(mx.cpu):
            _self_check(ext)
    except Exception as e:  # a binding or ABI mismatch shows up here, not as a crash later
        status.reason = f"failed its self-check ({type(e).__name__}: {e})"
        return status
    _EXT = ext
    status.available, status.isa, status.threads = True, ext.isa(), ext.threads()
    return status


def status() -> KernelStatus:
    """Load the extension once (self-check included) and say what runs."""
    global _STATUS
    if _STATUS is None:
        _STATUS = _load()
    return _STATUS


def available() -> bool:
    """True when the extension loaded (whatever the device)."""
    return status().available


def active() -> bool:
    """True when the kernels serve this call: the extension loaded and the default device is the CPU."""
    return not _DISABLED and (_EXT is not None or available()) and mx.default_device() == mx.cpu


@contextmanager
def disabled():
    """MLX's own ops inside the block (to compare both paths in one process: tests, benchmarks).

    The choice is made when a layer builds its part of the graph, so evaluate inside the block.
    """
    global _DISABLED
    _DISABLED += 1
    try:
        yield
    finally:
        _DISABLED -= 1


def set_threads(n: int) -> None:
    """Change the kernels' thread count (``ZOO_THREADS`` sets it at start-up)."""
    if available():
        _EXT.set_threads(int(n))
        status().threads = _EXT.threads()


def set_isa(name: str) -> None:
    """Use a lower instruction set (``generic``, ``avx2``...): for tests and benchmarks."""
    if available():
        _EXT.set_isa(name)
        status().isa = _EXT.isa()


# -- dispatch -------------------------------------------------------------------------------------


def _quant_ok(x, biases, group_size, bits, mode) -> bool:
    return (mode == "affine" and biases is not None and bits in QUANT_BITS and group_size in QUANT_GROUPS
            and x.dtype in FLOATS and active())


def quantized_matmul(x, w, scales, biases, group_size: int, bits: int, mode: str = "affine"):
    """``mx.quantized_matmul(x, w, scales, biases, transpose=True, ...)``, by the kernels when they serve it."""
    if _quant_ok(x, biases, group_size, bits, mode) and w.ndim == 2:
        return _EXT.qmm(x, w, scales, biases, group_size, bits)
    return mx.quantized_matmul(x, w, scales=scales, biases=biases, transpose=True, group_size=group_size,
                               bits=bits, mode=mode)


def gather_qmm(x, w, scales, biases, indices, group_size: int, bits: int, mode: str = "affine",
               sorted_indices: bool = False, global_scale=None):
    """``mx.gather_qmm(x, w, ..., rhs_indices=indices, transpose=True)``, by the kernels when they serve it."""
    if _quant_ok(x, biases, group_size, bits, mode) and w.ndim == 3 and global_scale is None:
        return _EXT.gather_qmm(x, w, scales, biases, indices, group_size, bits)
    kwargs = {} if global_scale is None else {"global_scale": global_scale}
    return mx.gather_qmm(x, w, scales, biases, rhs_indices=indices, transpose=True, group_size=group_size,
                         bits=bits, mode=mode, sorted_indices=sorted_indices, **kwargs)


def half_ok(x, weight) -> bool:
    """True when ``x @ weight.T`` (or its gather form) runs in the kernels: half weights on the CPU."""
    return weight.dtype in HALF and x.dtype in FLOATS and active()


def half_matmul_t(x, weight):
    """``x @ weight.T`` for a bfloat16/float16 ``weight [N, K]`` by the kernels (check :func:`half_ok`)."""
    return _EXT.half_mm(x, weight)


def gather_half_mm(x, weight, indices, sorted_indices: bool = False):
    """``mx.gather_mm(x, weight.swapaxes(-1, -2), rhs_indices=indices)``, by the kernels when they serve it."""
    if half_ok(x, weight) and weight.ndim == 3:
        return _EXT.gather_half_mm(x, weight, indices)
    return mx.gather_mm(x, weight.swapaxes(-1, -2), rhs_indices=indices, sorted_indices=sorted_indices)


# -- the fused feed-forward block (csrc/moe.h; zoo_registry.runtime.fused builds the arguments) ---


def fused_ffn_available() -> bool:
    """True when the extension loaded and has the fused SwiGLU MLP / MoE block primitive."""
    return available() and hasattr(_EXT, "fused_ffn")


def fused_ffn_active() -> bool:
    """True when the fused block serves this call (:func:`active`, and the extension has it)."""
    return active() and hasattr(_EXT, "fused_ffn")


def fused_ffn(x, router, experts, expert_formats, shared, shared_formats, top_k: int = 0, renormalize: bool = False):
    """``shared(x) + sum_j w_j * expert_j(x)`` in one CPU primitive (check :func:`fused_ffn_active`).

    ``experts``/``shared``: the gate, up, down projections' arrays (``[w]`` for bfloat16/float16,
    ``[w, scales, biases]`` for MLX affine 4/8-bit), ``*_formats`` their ``(bits, group_size)``
    flattened (bits 0 for half precision); ``router`` the float ``[E, D]`` router weight or ``None``.
    """
    return _EXT.fused_ffn(x, router, experts, expert_formats, shared, shared_formats, top_k, renormalize)
