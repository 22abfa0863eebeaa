"""No module of zoo reaches for the process-wide registry, except at the public boundary (issue 14).

The registry is passed in: the CLI's ``main`` looks it up once and hands it to the command; each
public function whose ``registry`` argument is optional resolves that default itself, at its own
entry, and passes the registry on. Everything else takes the registry it is given. The check reads
the source with :mod:`ast` (nothing is imported): every use of ``get_registry`` must stand inside
one of the functions listed here, and each of those must be a public name (docs/public-api.md).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import zoo_registry

ROOT = Path(zoo_registry.__file__).resolve().parent
DOC = Path(__file__).resolve().parent.parent / "docs" / "public-api.md"  # the repository's docs (not installed)

# module (relative to the package) -> the functions that may resolve the default registry
BOUNDARY = {
    "__init__.py": {"get_component"},
    "cli/main.py": {"main"},  # the CLI: hands it to every command as args.registry
    "configs.py": {"validate_config"},
    "loading/__init__.py": {"load_model", "load"},
    "loading/plan.py": {"plan"},
    "loading/resolve.py": {"resolve_source"},
    "tokenizer/loader.py": {"load_tokenizer"},
    "chat/formats.py": {"output_format"},
    "testing.py": {"to_layout", "run_model_tests"},
}
NOT_IN_THE_DOC = {("cli/main.py", "main")}  # the console script's entry point


def uses(path: Path):
    """``(enclosing function or None, line)`` for each reference to ``get_registry`` that is not
    its definition, an import or a string."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []

    def walk(node, function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                walk(child, child.name if function is None else function)
                continue
            if (isinstance(child, ast.Name) and child.id == "get_registry") or (
                    isinstance(child, ast.Attribute) and child.attr == "get_registry"):
                found.append((function, child.lineno))
            walk(child, function)

    walk(tree, None)
    return found


def test_only_the_public_boundary_looks_up_the_registry():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for function, line in uses(path):
            if function not in BOUNDARY.get(rel, set()):
                wrong.append(f"zoo_registry/{rel}:{line} in {function or 'module level'}")
    assert not wrong, "these look up the process-wide registry; take it as an argument instead:\n  " + "\n  ".join(wrong)


def test_every_boundary_is_public_and_still_looks_it_up():
    rows = [line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| `zoo_registry")]
    documented = set(re.findall(r"`(\w+)`", "\n".join(rows)))  # the names the table declares public
    for rel, functions in BOUNDARY.items():
        used = {function for function, _ in uses(ROOT / rel)}
        for function in functions:
            assert function in used, f"{rel}: {function} no longer looks up the registry; drop it from BOUNDARY"
            if (rel, function) not in NOT_IN_THE_DOC:
                assert function in documented, f"{rel}: {function} resolves the registry but is not public (docs/public-api.md)"


def test_the_check_sees_a_fallback(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from .registry import get_registry\n\ndef helper(registry=None):\n    return registry or get_registry()\n")
    assert uses(bad) == [("helper", 4)]
