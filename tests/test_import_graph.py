"""zoo_registry's modules import each other without cycles.

The graph is read from the source with :mod:`ast` (nothing is imported). Its nodes are the modules
of the ``zoo_registry`` package (a package is its ``__init__``); an edge ``A -> B`` means ``A``
imports ``B``:

- every ``import`` and ``from ... import`` counts, **including those inside functions**: a
  function-level import only postpones a cycle to call time; the two modules still cannot be
  understood, tested or moved apart (``cards`` <-> ``registry`` was such a cycle);
- imports under ``if TYPE_CHECKING:`` do not count (they never run);
- ``from P import name`` is an edge to the module ``P.name`` when there is one, else to ``P``
  itself (``from . import __version__`` depends on the package's ``__init__``);
- importing ``P.Q.m`` also runs the packages ``P.Q`` on the way, so it is an edge to each of them,
  except the packages that contain the importing module (Python imported those before it).

``OTHER_PARTS`` lists the cycles that other parts of the same redesign (issue 14) are removing, in
files this change does not own; each must disappear, and the test says when one has, so the list
only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import zoo_registry

PACKAGE = "zoo_registry"
ROOT = Path(zoo_registry.__file__).resolve().parent

OTHER_PARTS: dict = {}  # every cycle named by issue 14 is gone


def _modules(root: Path = ROOT) -> dict:
    """``{"zoo_registry.x.y": (path, is_package)}`` for every module of the package."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [PACKAGE, *path.relative_to(root).with_suffix("").parts]
        package = parts[-1] == "__init__"
        if package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, package)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every Import/ImportFrom node, at any depth, outside ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph(root: Path = ROOT) -> dict:
    """``{module: {imported module, ...}}`` restricted to the package's own modules."""
    modules = _modules(root)
    graph = {name: set() for name in modules}
    for name, (path, is_package) in modules.items():
        here = name if is_package else name.rpartition(".")[0]  # the package relative imports start from
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        if is_package:
            ancestors.add(name)

        def add(target: str, explicit: bool = False):
            parts = target.split(".")
            for i in range(2, len(parts) + 1):  # the packages run on the way, then the module itself
                step = ".".join(parts[:i])
                if step in modules and step != name and (step not in ancestors or (explicit and step == target)):
                    graph[name].add(step)

        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                        add(alias.name)
                continue
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source != PACKAGE and not source.startswith(PACKAGE + "."):
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in modules:
                    add(sub)
                else:
                    add(source, explicit=True)
    return graph


def find_cycles(graph: dict) -> list:
    """The strongly connected components with more than one module (or a self-import), sorted."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):  # Tarjan's algorithm, iterative so deep graphs cannot hit the recursion limit
        work = [(v, iter(sorted(graph[v])))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == node:
                            break
                    if len(component) > 1 or node in graph[node]:
                        out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def _one_cycle(graph: dict, component: list) -> list:
    """A concrete path ``a -> b -> ... -> a`` inside ``component``, for the failure message."""
    members, start = set(component), component[0]
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for nxt in sorted(graph[path[-1]] & members):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                paths.append(path + [nxt])
    return component


def test_graph_sees_the_package():
    graph = import_graph()
    assert f"{PACKAGE}.registry" in graph and f"{PACKAGE}.cli.main" in graph
    # a function-level import is an edge: cli.main imports the BLAS module inside main()
    assert f"{PACKAGE}.runtime.blas" in graph[f"{PACKAGE}.cli.main"]


def test_detector_finds_a_function_level_cycle(tmp_path):
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .sub import c\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import b\n"
                                      "def g():\n    from ..a import f\n")
    (pkg / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n")
    graph = import_graph(pkg)
    assert graph[f"{PACKAGE}.d"] == set()  # TYPE_CHECKING-only imports are not edges
    assert find_cycles(graph) == [[f"{PACKAGE}.a", f"{PACKAGE}.b", f"{PACKAGE}.sub.c"]]


def test_no_import_cycles():
    graph = import_graph()
    cycles = [c for c in find_cycles(graph) if frozenset(c) not in OTHER_PARTS]
    assert not cycles, "import cycles in zoo_registry:\n" + "\n".join(
        "  " + " -> ".join(_one_cycle(graph, c)) + (f"   (cycle of {len(c)} modules: {', '.join(c)})" if len(c) > 2 else "")
        for c in cycles)


def test_the_cycles_left_to_other_parts_still_exist():
    """An entry of OTHER_PARTS that no longer is a cycle is removed from the list, so it cannot come back."""
    present = {frozenset(c) for c in find_cycles(import_graph())}
    gone = [sorted(c) for c in OTHER_PARTS if c not in present]
    assert not gone, f"these cycles are gone: remove them from OTHER_PARTS in {Path(__file__).name}: {gone}"


def test_the_cards_registry_and_cli_modules_are_in_no_cycle():
    """The two cycles issue 14 named: cards <-> registry and cli.generate_cmd <-> cli.load_cmd."""
    graph = import_graph()
    assert f"{PACKAGE}.registry" not in graph[f"{PACKAGE}.cards"] and f"{PACKAGE}.cards" in graph[f"{PACKAGE}.registry"]
    in_cycles = {m for c in find_cycles(graph) for m in c}
    for module in ("cards", "card_requires", "card_sources", "registry", "registry_text", "registration",
                   "cli.load_cmd", "cli.generate_cmd", "cli.pipeline", "cli.serve_cmd", "cli.chat_cmd"):
        assert f"{PACKAGE}.{module}" not in in_cycles
