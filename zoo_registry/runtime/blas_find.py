"""Where zoo looks for an optimised CBLAS, in ``ZOO_BLAS=auto`` order (see :mod:`.blas` for why).

Intel MKL installed *in this Python environment* (the ``mkl`` wheel of ``pip install
"zoo-mlx[fast]"`` puts ``libmkl_rt.so.N`` in ``<sys.prefix>/lib``), then Debian's BLIS
(``libblis4-pthread``), then OpenBLAS (``libopenblas0-pthread``, ``-openmp``, ``-serial``), then
whatever ``ctypes.util.find_library`` finds for ``mkl_rt``/``blis``/``openblas``. Finding a file
loads nothing.
"""

from __future__ import annotations

import ctypes.util
import platform
import re
import site
import sys
from pathlib import Path
from typing import List, Tuple

FAMILIES = ("mkl", "blis", "openblas")


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
