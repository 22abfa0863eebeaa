"""How fast one core reads memory: the honest bound for zoo's one-row (decode) products.

``benchmarks/read_probe.c`` (compiled here with the system C compiler, ``-O2 -march=native``)
sums a 256 MB float32 buffer as 1-8 interleaved streams of 64-byte vector loads, each stream
prefetched 0 (hardware prefetcher only) to 4096 bytes ahead, on 4 KB pages (what MLX's allocator
gets from ``malloc`` here: transparent huge pages are ``madvise``-only) and on 2 MB pages
(``madvise(MADV_HUGEPAGE)`` before the first touch). Every configuration is measured in
alternation with the others, ``--reps`` times, medians in GB/s; numpy's ``sum`` (what
``bench_kernels.py`` calls the read bandwidth) is printed beside it.

    python benchmarks/bench_read_probe.py [--reps 9] [--streams 1,2,4,8] [--dists 0,512,1024,2048,4096]
"""

from __future__ import annotations

import argparse
import ctypes
import mmap
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE = 256 << 20
MADV_HUGEPAGE, MADV_NOHUGEPAGE = 14, 15


def build(tmp: str) -> ctypes.CDLL:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        sys.exit("bench_read_probe: no C compiler (set CC)")
    out = os.path.join(tmp, "read_probe.so")
    subprocess.run([cc, "-O2", "-march=native", "-shared", "-fPIC", os.path.join(HERE, "read_probe.c"), "-o", out],
                   check=True)
    lib = ctypes.CDLL(out)
    lib.read_probe.restype = ctypes.c_float
    lib.read_probe.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
    return lib


def buffer(huge: bool):
    """SIZE bytes of private anonymous memory (2 MB aligned), advised before the first touch."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    raw = libc.mmap(None, SIZE + (2 << 20), mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    if raw in (None, ctypes.c_void_p(-1).value):
        sys.exit("bench_read_probe: mmap failed")
    addr = (raw + (2 << 20) - 1) // (2 << 20) * (2 << 20)
    advised = libc.madvise(addr, SIZE, MADV_HUGEPAGE if huge else MADV_NOHUGEPAGE) == 0
    arr = np.ctypeslib.as_array((ctypes.c_float * (SIZE // 4)).from_address(addr))
    arr[:] = 1.0  # first touch: the pages are allocated here, with the advice in force
    return addr, arr, advised


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=9)
    p.add_argument("--streams", default="1,2,4,8")
    p.add_argument("--dists", default="0,512,1024,2048,4096", help="prefetch distances in bytes (0: none)")
    p.add_argument("--locality", type=int, default=0, help="0: prefetchnta (zoo's kernels), 3: prefetcht0")
    args = p.parse_args(argv)
    streams = [int(s) for s in args.streams.split(",")]
    dists = [int(d) for d in args.dists.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        lib = build(tmp)
        bufs = {"4 KB": buffer(False), "2 MB": buffer(True)}
        npa = np.ones(SIZE // 4, dtype=np.float32)
        configs = [(pg, s, d) for pg in bufs for s in streams for d in dists]
        times = {c: [] for c in configs}
        np_times = []
        load0 = os.getloadavg()[0]
        for _ in range(args.reps):
            for c in configs:
                addr = bufs[c[0]][0]
                start = time.perf_counter()
                lib.read_probe(addr, SIZE // 4, c[1], c[2], args.locality)
                times[c].append(time.perf_counter() - start)
            start = time.perf_counter()
            npa.sum()
            np_times.append(time.perf_counter() - start)
        gbs = lambda ts: SIZE / statistics.median(ts) / 1e9  # noqa: E731
        print(f"# one core's read bandwidth, {SIZE >> 20} MB float32, medians of {args.reps}, "
              f"prefetch locality {args.locality}, load average {load0:.2f} -> {os.getloadavg()[0]:.2f}; "
              f"numpy sum {gbs(np_times):.1f} GB/s; 2 MB pages advised: {bufs['2 MB'][2]}\n")
        print("| pages | streams | " + " | ".join(f"prefetch {d} B" if d else "no prefetch" for d in dists) + " |")
        print("|---|---|" + "---|" * len(dists))
        for pg in bufs:
            for s in streams:
                print(f"| {pg} | {s} | " + " | ".join(f"{gbs(times[(pg, s, d)]):.1f}" for d in dists) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
