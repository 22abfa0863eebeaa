"""The README's environment table lists every variable zoo reads, and nothing it does not.

The variables are found in the source, not in a list kept by hand: every ``os.environ[...]``,
``os.environ.get/setdefault/pop(...)``, ``os.getenv(...)`` and ``... in os.environ`` in
``zoo_registry/``, ``plugin/`` and ``setup.py`` (the name a string literal, a module constant, or a
parameter of a helper whose callers pass literals), and every ``getenv("...")`` in ``csrc/``.
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PYTHON = [*sorted((ROOT / "zoo_registry").rglob("*.py")), *sorted((ROOT / "plugin").rglob("*.py")), ROOT / "setup.py"]
CPP = sorted(p for p in (ROOT / "csrc").rglob("*") if p.suffix in (".cpp", ".h", ".hpp", ".cc"))
TABLE_HEADING = "### Environment variables"


def _is_environ(node) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (isinstance(node, ast.Name) and node.id == "environ")


def _name_of_read(node):
    """The argument naming the variable, if ``node`` reads the environment."""
    if isinstance(node, ast.Subscript) and _is_environ(node.value):
        return node.slice
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        f = node.func
        if f.attr in ("get", "setdefault", "pop") and _is_environ(f.value) and node.args:
            return node.args[0]
        if f.attr == "getenv" and node.args:
            return node.args[0]
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn)) \
            and _is_environ(node.comparators[0]):
        return node.left
    return None


def module_constants(tree) -> dict:
    return {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
            for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value.value, str)}


def shared_constants() -> dict:
    """Module-level string constants of every scanned module (a constant imported from a sibling module)."""
    out = {}
    for path in PYTHON:
        out.update(module_constants(ast.parse(path.read_text(encoding="utf-8"))))
    return out


def python_reads(path: Path, imported: dict):
    """``(names, unresolved)`` of one module; unresolved reads are ``path:line`` strings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    constants = {**imported, **module_constants(tree)}
    functions = {f.name: f for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    names, unresolved = set(), []
    for node in ast.walk(tree):
        arg = _name_of_read(node)
        if arg is None:
            continue
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            names.add(arg.value)
        elif isinstance(arg, ast.Name) and arg.id in constants:
            names.add(constants[arg.id])
        elif isinstance(arg, ast.Name):  # a helper's parameter: the literals its callers in this module pass
            scope = node
            while scope in parents and not isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
                scope = parents[scope]
            params = [a.arg for a in getattr(getattr(scope, "args", None), "args", [])]
            if arg.id not in params or scope.name not in functions:
                unresolved.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                continue
            index = params.index(arg.id)
            calls = [c for c in ast.walk(tree) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id == scope.name]
            literals = [c.args[index].value for c in calls if len(c.args) > index and isinstance(c.args[index], ast.Constant)]
            if not calls or len(literals) != len(calls):
                unresolved.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            names.update(literals)
        else:
            unresolved.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return names, unresolved


def variables_read():
    names, unresolved, imported = set(), [], shared_constants()
    for path in PYTHON:
        found, missing = python_reads(path, imported)
        names |= found
        unresolved += missing
    for path in CPP:
        names |= set(re.findall(r'getenv\(\s*"([A-Za-z_][A-Za-z0-9_]*)"\s*\)', path.read_text(encoding="utf-8")))
    return names, unresolved


def table_variables():
    text = README.read_text(encoding="utf-8")
    assert TABLE_HEADING in text, f"README.md has no {TABLE_HEADING!r} section"
    section = text.split(TABLE_HEADING, 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)", row.split("|")[1])}


def test_the_scanner_finds_what_it_should():
    """The walk is not vacuous: known reads of each form are found (a literal, a constant, a helper's parameter, C++)."""
    names, unresolved = variables_read()
    assert {"ZOO_CACHE_DIR", "ZOO_BLAS", "ZOO_LOAD_PLUGINS", "MLX_HOSTFILE", "ZOO_THREADS", "ZOO_BUILD_KERNELS", "NO_COLOR"} <= names
    assert unresolved == [], f"environment reads whose variable name the test cannot tell: {unresolved} (use a literal or a module constant)"


def test_every_variable_zoo_reads_is_in_the_readme_table():
    names, _ = variables_read()
    missing = sorted(names - table_variables())
    assert missing == [], f"README.md's {TABLE_HEADING!r} table lacks {missing}"


def test_every_zoo_variable_in_the_table_is_read_somewhere():
    """No stale rows: each ZOO_* row is read by zoo, its build, or (``ZOO_HUNYUAN_DATA``) the tests."""
    names, _ = variables_read()
    test_sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("*.py"))
    stale = sorted(n for n in table_variables() if n.startswith("ZOO_") and n not in names and f'"{n}"' not in test_sources)
    assert stale == []
