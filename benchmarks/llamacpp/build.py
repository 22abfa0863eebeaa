"""llama.cpp, built once from a pinned source that PyPI serves, cached outside the repository.

Source: the ``llama-cpp-python`` source distribution (``pip download --no-binary :all: --no-deps
llama-cpp-python==<PIN>``) vendors a whole llama.cpp tree (``vendor/llama.cpp``: ggml, the tools,
``convert_hf_to_gguf.py`` and ``gguf-py``). Build: CPU only, ``-DGGML_NATIVE=ON`` (the SIMD of this
machine), no curl/OpenSSL/tests/server, and only the tools the comparison runs: ``llama-bench``,
``llama-completion`` (the plain text-completion CLI; ``llama-cli`` is the chat UI in this version)
and ``llama-quantize`` (q8_0 / q4_0 from the f32 GGUF). Everything goes under the cache folder
(``$ZOO_BENCH_CACHE``, default ``~/.cache/zoo-bench``)``/llamacpp``; a finished build is reused and a
lock file keeps two runs from building at once. Compilation runs under ``nice -n 15``.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tarfile
from pathlib import Path

PIN = "0.3.36"
TARGETS = ("llama-bench", "llama-completion", "llama-quantize")
CMAKE_FLAGS = ("-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
               "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF")


def cache_dir() -> Path:
    root = Path(os.environ.get("ZOO_BENCH_CACHE", Path.home() / ".cache" / "zoo-bench"))
    path = root / "llamacpp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def source_tree(pin: str = PIN) -> Path:
    """``vendor/llama.cpp`` of the pinned sdist, downloaded and unpacked once."""
    cache = cache_dir()
    tree = cache / f"llama_cpp_python-{pin}" / "vendor" / "llama.cpp"
    if (tree / "CMakeLists.txt").is_file():
        return tree
    sdist = cache / f"llama_cpp_python-{pin}.tar.gz"
    if not sdist.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
                        f"llama-cpp-python=={pin}", "-d", str(cache)], check=True)
    with tarfile.open(sdist) as tar:
        tar.extractall(cache, filter="data")
    return tree


def binaries(pin: str = PIN) -> dict:
    return {t: cache_dir() / f"build-{pin}" / "bin" / t for t in TARGETS}


def build(pin: str = PIN, jobs: int = 2) -> dict:
    """Configure and build the tools (skipped when they exist); returns ``{target: path}``."""
    tree, out = source_tree(pin), cache_dir() / f"build-{pin}"
    with open(cache_dir() / f"build-{pin}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second run waits for the first build instead of repeating it
        bins = binaries(pin)
        if all(p.is_file() for p in bins.values()):
            return bins
        nice = ["nice", "-n", "15"]
        with open(cache_dir() / f"build-{pin}.log", "a") as log:
            subprocess.run(nice + ["cmake", "-S", str(tree), "-B", str(out), *CMAKE_FLAGS], check=True, stdout=log, stderr=log)
            subprocess.run(nice + ["cmake", "--build", str(out), f"-j{jobs}", "--target", *TARGETS], check=True, stdout=log, stderr=log)
    return binaries(pin)


if __name__ == "__main__":
    for name, path in build().items():
        print(name, path)
