"""zoo's CPU kernel tables checked without MLX, on the host and on arm64.

``tests/native/kernel_table_check.cpp`` runs every kernel of a table (``matvec`` 4/8-bit with
float32/bfloat16/float16 scales and group sizes 32/64/128, half and float32 weights with odd K,
``permute4`` + ``xp_len``, ``tile``, ``gemm``) against a double-precision reference computed from
the same bytes. The tables need only the C++ standard library, so the driver is compiled here:

- natively, with every table ``csrc/CMakeLists.txt`` builds for this host (x86-64: generic, AVX2,
  AVX-512, AVX512_BF16; the driver runs those this CPU has);
- for arm64, with the cross compiler, and run under qemu-user: the NEON build of ``kern_generic.cpp``,
  the only table an arm64 build has (on an arm64 host, natively). The same test reads the NEON
  code's disassembly, and compiles the rest of ``csrc/`` for arm64 against the ``mlx`` wheel's
  headers (compiled, not linked or run: no arm64 ``libmlx`` can be linked on another machine).

.ci/run installs the cross tools (``g++-aarch64-linux-gnu qemu-user``); elsewhere, without them, the
arm64 tests skip and say what to install.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
DRIVER = ROOT / "tests" / "native" / "kernel_table_check.cpp"
# csrc/CMakeLists.txt's options for the kernel files, so the code checked is the code shipped.
FLAGS = ["-std=c++20", "-O3", "-fno-math-errno", "-ffp-contract=fast", f"-I{CSRC}"]
AVX512 = ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mfma", "-mf16c", "-Wno-maybe-uninitialized"]
X86_TABLES = {
    "kern_avx2.cpp": ["-mavx2", "-mfma", "-mf16c"],
    "kern_avx512.cpp": AVX512,
    "kern_avx512bf16.cpp": AVX512 + ["-mavx512bf16"],
}
CROSS = "aarch64-linux-gnu-g++"
SYSROOT = Path("/usr/aarch64-linux-gnu")  # the cross compiler's C/C++ runtime, for qemu's -L
APT_LINE = "apt-get install -y --no-install-recommends g++-aarch64-linux-gnu qemu-user"
HOST_ARM64 = platform.machine().lower() in ("aarch64", "arm64")
# The MLX binding layer's files that need nanobind and Python (a build-time requirement only).
NANOBIND_FILES = {"bindings.cpp", "moe_bindings.cpp"}


def _missing(what: str) -> None:
    """Skip, or fail in CI on Linux, where .ci/run installs what is missing."""
    message = f"{what} (Debian/Ubuntu, as root: {APT_LINE})"
    if os.environ.get("CI") and sys.platform.startswith("linux"):
        pytest.fail(f"{message}; .ci/run installs them", pytrace=False)
    pytest.skip(message)


def _run(cmd: list, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _compile_all(jobs: list) -> None:
    """Run compiler commands two at a time (the machines that run this suite have few cores)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        for _ in pool.map(_run, jobs):
            pass


def _host_compiler() -> str:
    cxx = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if cxx is None:
        if os.environ.get("CI"):
            pytest.fail("no C++ compiler (g++/c++) to build the kernel check; .ci/run installs g++", pytrace=False)
        pytest.skip("no C++ compiler (g++/c++) to build the kernel check")
    return cxx


def _accepts(cxx: str, flag: str, tmp: Path) -> bool:
    """Whether the compiler knows ``flag`` (CMakeLists.txt's check_cxx_compiler_flag)."""
    probe = tmp / "probe.cpp"
    probe.write_text("int main() { return 0; }\n")
    return subprocess.run([cxx, flag, "-c", str(probe), "-o", str(tmp / "probe.o")], capture_output=True).returncode == 0


def _cpu_tables() -> set:
    """The x86-64 tables this CPU runs, from the Linux kernel's flags (None where unknown)."""
    cpuinfo = Path("/proc/cpuinfo")
    if platform.machine() != "x86_64" or not cpuinfo.is_file():
        return None
    flags = set(re.search(r"^flags\s*:(.*)$", cpuinfo.read_text(), re.M).group(1).split())
    tables = {"generic"}
    if {"avx2", "fma"} <= flags:
        tables.add("avx2")
        if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
            tables.add("avx512")
            if "avx512_bf16" in flags:
                tables.add("avx512bf16")
    return tables


def _summary(out: str) -> dict:
    """The driver's summary line: tables checked, checks, mismatches."""
    m = re.search(r"kernel_table_check: tables (.+?); (\d+) checks, (\d+) mismatches", out)
    assert m, out
    return {"tables": {t.split("(")[0] for t in m.group(1).split(",")}, "checks": int(m.group(2)), "bad": int(m.group(3))}


def test_host_tables_match_reference(tmp_path):
    cxx = _host_compiler()
    objs, jobs, defines = [], [], []
    sources = {"kern_generic.cpp": []}
    if platform.machine() == "x86_64":
        sources.update({f: opts for f, opts in X86_TABLES.items() if f != "kern_avx512bf16.cpp"})
        defines.append("-DZK_CHECK_X86")
        if _accepts(cxx, "-mavx512bf16", tmp_path):
            sources["kern_avx512bf16.cpp"] = X86_TABLES["kern_avx512bf16.cpp"]
            defines.append("-DZOO_HAVE_AVX512BF16")
    for name, opts in sources.items():
        objs.append(tmp_path / (name + ".o"))
        jobs.append([cxx, *FLAGS, *opts, "-c", CSRC / name, "-o", objs[-1]])
    objs.append(tmp_path / "driver.o")
    jobs.append([cxx, *FLAGS, *defines, "-Wall", "-Wextra", "-c", DRIVER, "-o", objs[-1]])
    _compile_all(jobs)
    _run([cxx, "-o", tmp_path / "check", *objs])
    done = subprocess.run([str(tmp_path / "check")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    got = _summary(done.stdout)
    assert got["bad"] == 0 and got["checks"] > 10_000
    expected = _cpu_tables()
    if expected is not None:  # x86-64 Linux: every table the CPU runs was checked, by its name
        if "-DZOO_HAVE_AVX512BF16" not in defines:
            expected.discard("avx512bf16")
        assert got["tables"] == expected, done.stdout
    else:
        assert got["tables"] == {"neon" if HOST_ARM64 else "generic"}, done.stdout


@pytest.fixture(scope="module")
def arm64(tmp_path_factory):
    """The NEON table and the driver built for arm64 (cross, or native on an arm64 host)."""
    tmp = tmp_path_factory.mktemp("arm64")
    if HOST_ARM64:
        cxx, run, objdump = _host_compiler(), [], shutil.which("objdump")
    else:
        cxx, qemu, objdump = shutil.which(CROSS), shutil.which("qemu-aarch64"), shutil.which("aarch64-linux-gnu-objdump")
        if not (cxx and qemu and objdump and SYSROOT.is_dir()):
            _missing("the arm64 cross compiler and emulator are not installed")
        run = [qemu, "-L", SYSROOT]
    kern, driver = tmp / "kern_generic.o", tmp / "driver.o"
    _compile_all([
        [cxx, *FLAGS, "-c", CSRC / "kern_generic.cpp", "-o", kern],
        [cxx, *FLAGS, "-Wall", "-Wextra", "-c", DRIVER, "-o", driver],
    ])
    _run([cxx, "-o", tmp / "check", driver, kern])
    return {"cxx": cxx, "run": run, "check": tmp / "check", "kern": kern, "objdump": objdump, "tmp": tmp}


def test_neon_table_matches_reference(arm64):
    done = subprocess.run([*map(str, arm64["run"]), str(arm64["check"])], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    got = _summary(done.stdout)
    assert got["tables"] == {"neon"} and got["bad"] == 0 and got["checks"] > 10_000, done.stdout
    assert "neon(vw 4)" in done.stdout


def _functions(disassembly: str) -> dict:
    """Demangled function name -> its instructions' text, from ``objdump -d -C``."""
    funcs, name = {}, None
    for line in disassembly.splitlines():
        head = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if head:
            name = head.group(1)
            funcs[name] = []
        elif name and "\t" in line:
            funcs[name].append(line.split("\t", 1)[1])
    return {k: "\n".join(v) for k, v in funcs.items()}


def test_neon_code_is_vector_code(arm64):
    """The arm64 kernels are NEON code: FMAs on 4-float vector registers in the matrix-vector and
    GEMM loops, quantized bytes widened in vector registers (not loaded byte by byte into lanes),
    float16 converted by FCVTL."""
    text = _run([arm64["objdump"], "-d", "-C", "--no-show-raw-insn", arm64["kern"]]).stdout
    funcs = _functions(text)
    # Each kernel with whatever helpers the compiler kept out of line (GCC 12 inlines them all).
    body = {
        key: "\n".join(v for k, v in funcs.items() if re.search(pattern, k))
        for key, pattern in (("matvec", r"::(matvec|mv_\w+)[<(]"), ("gemm", r"::gemm(_block)?[<(]"))
    }
    vector_fma = re.compile(r"\bfmla\s+v\d+\.4s, v\d+\.4s, v\d+\.(4s|s\[\d\])")
    for key, code in body.items():
        assert len(vector_fma.findall(code)) >= 8, f"{key}: no NEON FMAs\n{code[:2000]}"
    mv = body["matvec"]
    assert re.search(r"\buxtl\s+v\d+\.8h, v\d+\.8b", mv) and re.search(r"\bfcvtl\s+v\d+\.4s, v\d+\.4h", mv)
    # Before the NEON loads (csrc/kern_impl.inc) GCC built each vector of 4 bytes from 4 byte loads
    # and 4 lane inserts: 136 single-byte loads in these kernels.
    assert len(re.findall(r"\bldu?r\s+b\d+,", mv)) == 0, "matvec loads quantized weights byte by byte"


def test_csrc_compiles_for_arm64(arm64):
    """Every file of the extension but the two nanobind glue files compiles for arm64 against the
    mlx wheel's headers (the kernel tables, the thread pool's pause, isa.cpp's CPU detection, the
    MoE GEMM's multiversioning guard, the MLX primitives). Not linked or run: that needs an arm64
    libmlx."""
    import mlx

    include = Path(next(iter(mlx.__path__))) / "include"
    assert (include / "mlx" / "array.h").is_file(), include
    tmp = arm64["tmp"]
    files = sorted(p for p in CSRC.glob("*.cpp") if p.name not in NANOBIND_FILES and not p.name.startswith("kern_avx"))
    assert {"ops.cpp", "isa.cpp", "pool.cpp", "moe_gemm.cpp"} <= {p.name for p in files}
    _compile_all([
        [arm64["cxx"], "-std=c++20", "-O0", "-Wno-psabi", f"-I{CSRC}", f"-I{include}", "-c", p, "-o", tmp / (p.stem + ".o")]
        for p in files
    ])
