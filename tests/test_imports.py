"""No import circles in `cli/` (package mlkit) or `runtime/` (package mlkit_runtime).

The graph is read from the source with `ast`, nothing is imported. Every import statement counts, also
one inside a function or under `if TYPE_CHECKING:`: a function-level import only moves the moment the
circle closes (and a test or a command can reach it first), and a type-only import is still a tie a
reader has to hold in their head. What an import statement ties, as Python runs it:

- `import a.b.c` and `from a.b.c import x` run `a/__init__.py`, `a/b/__init__.py` and `a/b/c.py`, so the
  importer is tied to each of them (and so to whatever each of those imports in turn: a package's
  `__init__.py` that re-exports a submodule ties every importer of the package to that submodule).
  `from a.b import c`, where `c` is a module, also ties to `a/b/c.py`.
- Except the importer's own enclosing packages: Python has already run (or is running) them before any
  module inside them runs, so `from mlkit.spec.schema import X` in `mlkit/spec/rules.py` does not tie
  `rules.py` to `mlkit/spec/__init__.py`, nor does `from . import sibling`. Taking a name that the
  package's own `__init__` defines (`from . import Cloud` in `clouds/aws.py`) does tie, since the name
  must be there first.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

# source root -> the import package it is installed as (setup.py)
ROOTS = {"cli": "mlkit", "runtime": "mlkit_runtime"}


def modules(root: Path, package: str) -> dict[str, Path]:
    """Every module under `root` by its dotted name; a package by its name, standing for its __init__.py."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join([package, *parts])] = path
    return found


def _resolved(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a `from ... import` names, relative levels included."""
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _enclosing(module: str) -> set[str]:
    return {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}


def _with_packages(target: str, importer: str, known: dict[str, Path]) -> set[str]:
    """`target` and the packages Python runs on the way to it, less the importer's own enclosing ones."""
    parts = target.split(".")
    chain = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return {name for name in chain if name in known and name not in _enclosing(importer)}


def graph(known: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of `known` that its imports run (module docstring: which count)."""
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found |= _with_packages(alias.name, name, known)
            elif isinstance(node, ast.ImportFrom):
                target = _resolved(name, is_package, node)
                found |= _with_packages(target, name, known)
                submodules = {f"{target}.{alias.name}" for alias in node.names} & known.keys()
                found |= submodules
                if target in known and len(submodules) < len(node.names):
                    found.add(target)  # a name defined in the package's __init__, even the importer's own package's
        found.discard(name)
        edges[name] = found
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected component of more than one module, as a path back to its start."""
    return [_loop(sorted(c)[0], c, edges) for c in components(edges)]


def components(edges: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module: each module in one reaches all the others."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


def _loop(start: str, component: set[str], edges: dict[str, set[str]]) -> list[str]:
    """The shortest path from `start` back to itself inside its component (breadth first)."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(edges[node] & component):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"{start} is in a component without a loop back")


@pytest.mark.parametrize("folder", sorted(ROOTS))
def test_no_import_circles(folder):
    edges = graph(modules(REPO / folder, ROOTS[folder]))
    assert edges, f"no modules read under {folder}/"
    found = components(edges)
    assert not found, "import circles:\n" + "\n".join(
        f"{len(c)} modules ({', '.join(sorted(c))}), for one: {' -> '.join(_loop(sorted(c)[0], c, edges))}" for c in found
    )


def _tree(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    return modules(tmp_path / "pkg", "pkg")


def test_a_circle_through_a_package_that_re_exports_is_found(tmp_path):
    # a imports the package b, whose __init__ re-exports b.c, which imports a: Python runs all three
    known = _tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg import b\n",
        "pkg/b/__init__.py": "from .c import thing\n",
        "pkg/b/c.py": "from ..a import other\n",
    })
    assert circles(graph(known)) == [["pkg.a", "pkg.b", "pkg.b.c", "pkg.a"]]


def test_a_circle_closed_inside_a_function_or_for_types_only_is_found(tmp_path):
    known = _tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "def f():\n    from pkg.b import x\n",
        "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n",
    })
    assert circles(graph(known)) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_a_module_naming_a_sibling_through_its_own_package_is_no_circle(tmp_path):
    # pkg/__init__ re-exports a; a imports pkg.b by its full name: Python ran pkg/__init__ before a anyway
    known = _tree(tmp_path, {
        "pkg/__init__.py": "from .a import f\n",
        "pkg/a.py": "from pkg.b import g\n",
        "pkg/b.py": "",
    })
    assert circles(graph(known)) == []


def test_a_sibling_taken_through_the_package_is_no_circle_but_a_name_of_its_init_is(tmp_path):
    # pkg/__init__ imports a; a takes its sibling b by `from . import b` (no circle), then a name of the
    # __init__ itself, which Python may not have defined yet (a circle)
    files = {"pkg/__init__.py": "from . import a\nNAME = 1\n", "pkg/b.py": ""}
    assert circles(graph(_tree(tmp_path, files | {"pkg/a.py": "from . import b\n"}))) == []
    assert circles(graph(_tree(tmp_path, files | {"pkg/a.py": "from . import NAME, b\n"}))) == [["pkg", "pkg.a", "pkg"]]
