"""The project's layering, read from the source (nothing is imported): ``bench`` (the core) <- ``methods`` (the
generator plug-ins) <- ``training``. Every ``import`` statement counts, at module level or inside a function,
except those under ``if TYPE_CHECKING:``; plug-ins that the plug-in manager loads by name (importlib, entry points)
are not import statements and do not count. No import cycle between modules, and small modules."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "methods", "training")
#: The only imports allowed from one package into another: importer -> imported.
ALLOWED = {("methods", "bench"), ("training", "bench"), ("training", "methods")}
MAX_LINES = 400
#: The exact neighbour search of precision/recall, one algorithm kept together.
LONG_MODULES = {"bench/metrics/knn_exact.py"}


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the three packages under ``root``."""
    out = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Imports(ast.NodeVisitor):
    """The project modules one file imports (the longest known module each import statement names)."""

    def __init__(self, name: str, is_package: bool, known: dict[str, Path]) -> None:
        self.name, self.is_package, self.known, self.found = name, is_package, known, set()

    def _add(self, dotted: str) -> None:
        while dotted and dotted not in self.known:
            dotted = dotted.rpartition(".")[0]
        if dotted and dotted != self.name:
            self.found.add(dotted)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):  # annotations only: never executed
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            here = self.name.split(".")
            keep = len(here) - node.level + (1 if self.is_package else 0)
            base = ".".join(here[:keep] + ([base] if base else []))
        for alias in node.names:
            self._add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in self.known else base)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    known = modules(root)
    graph = {}
    for name, path in known.items():
        visitor = _Imports(name, path.name == "__init__.py", known)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        graph[name] = visitor.found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def wrong_way_imports(graph: dict[str, set[str]]) -> list[str]:
    """``importer -> imported`` for every import from one package into another that :data:`ALLOWED` lacks."""
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets
                  if a.split(".")[0] != b.split(".")[0] and (a.split(".")[0], b.split(".")[0]) not in ALLOWED)


def test_the_checker_sees_what_it_must():
    """The graph on a made-up tree: relative and in-function imports count, TYPE_CHECKING ones do not, a cycle
    and a core module importing a plug-in are found."""
    import tempfile

    files = {
        "bench/__init__.py": "",
        "bench/core.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from methods.a import A\n"
                         "def f():\n    from . import util\n",
        "bench/util.py": "def g():\n    import methods.a\n",
        "methods/__init__.py": "",
        "methods/a.py": "from .b import x\n",
        "methods/b.py": "from methods import a\nfrom bench.core import f\n",
        "training/__init__.py": "",
    }
    with tempfile.TemporaryDirectory() as tmp:
        for rel, text in files.items():
            (Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / rel).write_text(text)
        graph = import_graph(Path(tmp))
    assert graph["bench.core"] == {"bench.util"}
    assert graph["methods.a"] == {"methods.b"} and graph["methods.b"] == {"methods.a", "bench.core"}
    assert wrong_way_imports(graph) == ["bench.util -> methods.a"]
    assert cycles(graph) == [["bench.core", "bench.util", "methods.a", "methods.b"]]


def test_packages_import_only_down_the_layers():
    """bench imports neither methods nor training; methods does not import training."""
    wrong = wrong_way_imports(import_graph(ROOT))
    assert not wrong, f"imports against the layering bench <- methods <- training: {', '.join(wrong)}"


def test_no_import_cycle():
    found = cycles(import_graph(ROOT))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_modules_are_small():
    long = {path.relative_to(ROOT).as_posix(): n for path in modules(ROOT).values()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    over = {k: v for k, v in long.items() if k not in LONG_MODULES}
    assert not over, f"modules over {MAX_LINES} lines: {over}"
