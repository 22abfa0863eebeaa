"""Shared by the tests of zoo's CPU kernels: skip (or, in CI, fail) without the extension, and
run a test on every instruction set this CPU has (x86-64: avx512bf16 > avx512 > avx2 > generic)."""

from __future__ import annotations

import os

import pytest

from zoo_registry import kernels


def require_kernels(built: bool) -> None:
    """Skip the calling test module unless ``built`` (in CI, where the install builds them: fail)."""
    if built:
        return
    if os.environ.get("CI"):
        pytest.fail(f"zoo's CPU kernels must be built in CI: {kernels.status().reason}", pytrace=False)
    pytest.skip(f"zoo's CPU kernels are not built: {kernels.status().reason}", allow_module_level=True)


# x86-64's kernel tables, best first (csrc/isa.cpp); arm64 and others have one ("neon"/"generic").
X86_LADDER = ["avx512bf16", "avx512", "avx2", "generic"]


def isas() -> list:
    """The best instruction set of this CPU and every lower one."""
    best = kernels._EXT.isa()
    return X86_LADDER[X86_LADDER.index(best):] if best in X86_LADDER else [best]


@pytest.fixture
def each_isa(request):
    """Run the test with the kernels on ``request.param`` (parametrize with ``indirect=True``)."""
    ext = kernels._EXT
    before = ext.isa()
    ext.set_isa(request.param)
    yield request.param
    ext.set_isa(before)
