"""Build zoo's optional CPU kernels (``csrc/``, an MLX C++ extension) with CMake.

The package metadata lives in ``setup.cfg``; this file only adds the extension. If it cannot be
built (no C++ compiler, CMake failing, an MLX without headers, ``ZOO_BUILD_KERNELS=0``), the
install still succeeds without it: the reason is printed (``pip install -v`` shows it) and stored
next to the package, and ``zoo load`` reports it while MLX's own ops run (see docs/kernels.md).
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
ERROR_FILE = "_build_error.txt"  # read by zoo_registry.kernels when the extension is missing


class CMakeExtension(Extension):
    def __init__(self, name: str, sourcedir: Path):
        super().__init__(name, sources=[])
        self.sourcedir = str(sourcedir)


def _cmake() -> str:
    found = shutil.which("cmake")
    if found:
        return found
    try:  # the `cmake` wheel from the build requirements
        import cmake

        return str(Path(cmake.CMAKE_BIN_DIR) / "cmake")
    except (ImportError, AttributeError):
        raise RuntimeError("CMake not found (pip install cmake)") from None


def _summary(log: str) -> str:
    """The line that says why a CMake build failed (the message under ``CMake Error``, or ``error:``)."""
    lines = [ln.strip() for ln in log.splitlines()]
    for i, ln in enumerate(lines):
        if ln.startswith("CMake Error"):
            rest = [x for x in lines[i + 1:i + 6] if x]
            return " ".join(rest[:2]) if rest else ln
        if " error: " in ln or ln.startswith("error:"):
            return ln
    return lines[0] if lines and lines[0] else "unknown error"


class OptionalCMakeBuild(build_ext):
    """``build_ext`` that runs CMake for :class:`CMakeExtension` and never fails the install."""

    def build_extension(self, ext):
        if not isinstance(ext, CMakeExtension):
            return super().build_extension(ext)
        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / ERROR_FILE).unlink(missing_ok=True)
        if os.environ.get("ZOO_BUILD_KERNELS", "1").strip().lower() in ("0", "off", "no", "false"):
            return self._skip(out_dir, "ZOO_BUILD_KERNELS=0 at install time")
        start = time.time()
        try:
            self._cmake_build(ext, out_dir)
        except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
            detail = getattr(e, "output", None) or ""
            if isinstance(detail, bytes):
                detail = detail.decode(errors="replace")
            return self._skip(out_dir, f"{e}\n{detail[-4000:]}")
        print(f"zoo: built the CPU kernels in {time.time() - start:.0f} s", file=sys.stderr)

    def _cmake_build(self, ext, out_dir: Path) -> None:
        cmake = _cmake()
        build_dir = Path(self.build_temp).resolve() / "zoo_kernels"
        configure = [cmake, "-S", ext.sourcedir, "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                     f"-DPython_EXECUTABLE={sys.executable}", f"-DZOO_KERNELS_OUTPUT_DIR={out_dir}"]
        configure += [a for a in os.environ.get("CMAKE_ARGS", "").split() if a]
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 1)
        for cmd in (configure, [cmake, "--build", str(build_dir), "-j", jobs]):
            subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def _skip(self, out_dir: Path, why: str) -> None:
        first = _summary(why)
        (out_dir / ERROR_FILE).write_text(first + "\n\n" + why.strip() + "\n")
        bar = "=" * 78
        print(f"{bar}\nzoo: the CPU kernels were NOT built ({first}).\n"
              "zoo works without them (MLX's own, slower CPU ops). To build them, install a C++ compiler\n"
              "(e.g. apt-get install g++) and run: pip install --force-reinstall --no-deps .\n"
              f"{bar}", file=sys.stderr)


setup(
    ext_modules=[CMakeExtension("zoo_registry.kernels._ext", ROOT / "csrc")],
    cmdclass={"build_ext": OptionalCMakeBuild},
)
