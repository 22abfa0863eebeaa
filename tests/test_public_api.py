"""Every name docs/public-api.md declares public imports from where the document says."""

import importlib
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "public-api.md"


def declared():
    rows = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `(zoo_registry[\w.]*)`[^|]*\| (.+?) \|", line)
        if m:
            rows += [(m.group(1), name) for name in re.findall(r"`(\w+)`", m.group(2))]
    return rows


def test_the_document_declares_names():
    modules = {module for module, _ in declared()}
    assert {"zoo_registry", "zoo_registry.hookspecs", "zoo_registry.sanitize", "zoo_registry.chat"} <= modules
    assert len(declared()) > 60


@pytest.mark.parametrize("module, name", declared(), ids=lambda v: str(v))
def test_declared_name_imports(module, name):
    assert hasattr(importlib.import_module(module), name), f"{module}.{name} is declared public but does not exist"


def test_the_top_level_all_is_the_declared_list():
    import zoo_registry

    top = {name for module, name in declared() if module == "zoo_registry"} - {"__version__"}
    assert set(zoo_registry.__all__) == top
