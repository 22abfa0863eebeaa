"""Which library MLX's ``cblas_sgemm`` is actually bound to, read from ``libmlx.so``'s own GOT.

Why: :mod:`.blas` loads a BLAS with ``RTLD_GLOBAL`` before ``mlx.core`` so that ``libmlx`` binds
``cblas_sgemm`` to it instead of the reference BLAS the Linux wheel bundles. Whether that happened
is a fact of the dynamic linker, not of the order of our calls: ``dlsym(RTLD_DEFAULT, ...)`` only
says what the *global* scope offers. This module reads the slot the linker filled in for
``libmlx.so``'s ``cblas_sgemm`` relocation (``R_X86_64_JUMP_SLOT`` / ``R_AARCH64_JUMP_SLOT`` or a
``GLOB_DAT``; the slot address is the relocation's ``r_offset`` plus the library's load bias,
System V ABI / ELF-64 object file format) and asks ``dladdr`` which file holds the address there.

Python imports extension modules with ``RTLD_NOW``, so the slot is filled at ``import mlx.core``;
if it still points into ``libmlx`` itself (lazy binding), one 2x2 float32 matmul on the CPU fills it.
Linux and ELF-64 little-endian only; anything else returns ``None`` (unknown), never a guess.
:func:`global_provider` answers the question before ``mlx.core`` exists: which file the process's
own lookup of ``cblas_sgemm`` lands in.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
import sys
from typing import Dict, Optional

SYMBOL = "cblas_sgemm"
SHT_RELA, SHT_DYNSYM, PT_LOAD = 4, 11, 1


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def file_of(address: int) -> Optional[str]:
    """The shared object that holds ``address`` (``dladdr``), resolved to a real path."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    info = _DlInfo()
    if not address or not libc.dladdr(ctypes.c_void_p(address), ctypes.byref(info)) or not info.dli_fname:
        return None
    return os.path.realpath(info.dli_fname.decode())


def global_provider() -> Optional[str]:
    """The file that serves ``cblas_sgemm`` from the global symbol scope (``dlsym(RTLD_DEFAULT)``:
    ``LD_PRELOAD`` or an ``RTLD_GLOBAL`` load), or None; MLX's bundled BLAS is loaded privately and
    never shows here."""
    try:
        return file_of(ctypes.cast(getattr(ctypes.CDLL(None), SYMBOL), ctypes.c_void_p).value)
    except (AttributeError, OSError):
        return None


def relocation_slots(path: str, symbol: str = SYMBOL) -> Dict[str, int]:
    """``{"offsets": [r_offset...], "min_vaddr": lowest PT_LOAD vaddr}`` of ``symbol``'s relocations."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError(f"{path} is not a little-endian ELF-64 file")
    phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 0x36)
    min_vaddr = min(struct.unpack_from("<Q", data, phoff + i * phentsize + 16)[0]
                    for i in range(phnum) if struct.unpack_from("<I", data, phoff + i * phentsize)[0] == PT_LOAD)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    offsets = []
    for _name, kind, _flags, _addr, off, size, link, _info, _align, entsize in sections:
        if kind != SHT_RELA or not entsize or sections[link][1] != SHT_DYNSYM:
            continue
        symtab, strtab = sections[link], sections[sections[link][6]]
        for r in range(size // entsize):
            r_offset, r_info = struct.unpack_from("<QQ", data, off + r * entsize)
            st_name = struct.unpack_from("<I", data, symtab[4] + (r_info >> 32) * symtab[9])[0]
            start = strtab[4] + st_name
            if data[start:data.index(b"\0", start)].decode() == symbol:
                offsets.append(r_offset)
    return {"offsets": offsets, "min_vaddr": min_vaddr & ~0xFFF}


def _mapped(name: str) -> Optional[tuple]:
    """``(path, start)`` of the offset-0 mapping of the first mapped file called ``name``."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split()
            if len(parts) >= 6 and os.path.basename(parts[5]) == name and int(parts[2], 16) == 0:
                return parts[5], int(parts[0].split("-")[0], 16)
    return None


def mlx_sgemm_provider(library: str = "libmlx.so") -> Optional[str]:
    """The file serving MLX's ``cblas_sgemm`` calls in this process, or ``None`` when unknown
    (``mlx.core`` not imported, not Linux/ELF-64, or no such relocation)."""
    if not sys.platform.startswith("linux") or "mlx.core" not in sys.modules:
        return None
    found = _mapped(library)
    if found is None:
        return None
    path, start = found
    try:
        slots = relocation_slots(path)
    except (OSError, ValueError, struct.error, IndexError):
        return None
    if not slots["offsets"]:
        return None
    bias = start - slots["min_vaddr"]
    slot = bias + slots["offsets"][0]
    target = file_of(ctypes.c_void_p.from_address(slot).value)
    if target == os.path.realpath(path):  # still the PLT stub: bind it with one tiny CPU matmul
        import mlx.core as mx

        with mx.stream(mx.cpu):
            mx.eval(mx.ones((2, 2)) @ mx.ones((2, 2)))
        target = file_of(ctypes.c_void_p.from_address(slot).value)
    return target
