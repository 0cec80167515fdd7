"""The project's import graph, read from the source with ``ast`` (nothing is imported).

    python -m benchmarks.devtools.imports            # package-to-package edges (and the modules imported)
    python -m benchmarks.devtools.imports --modules  # module-to-module edges
    python -m benchmarks.devtools.imports --cycles   # exit 1 and print each cycle, if any

Every ``import`` statement counts, at module level or inside a function: an import moved into a
function to dodge a cycle is still a dependency. ``tests/test_imports.py`` uses this walk.
One thing is not an edge: Python runs a package's ``__init__`` before any of its submodules, but a
submodule does not depend on its package for that (``methods/__init__.py`` re-exporting
``methods.select`` is not a cycle with ``methods.select``). An explicit ``from methods import x``
in a submodule *is* an edge to ``methods``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("benchmarks", "methods", "reports", "suites")


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the project's packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _targets(node: ast.AST, module: str, is_package: bool, known: set[str]) -> list[str]:
    """The project modules one import statement names (a name imported from a package that is a submodule
    counts as that submodule)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative import
            parent = module.split(".") if is_package else module.split(".")[:-1]
            parent = parent[:len(parent) - node.level + 1]
            base = ".".join(parent + ([base] if base else []))
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    out = []
    for name in names:
        while name and name not in known:  # `import a.b.c` where only a.b is ours, or a third-party name
            name = name.rpartition(".")[0]
        if name and name != module:
            out.append(name)
    return out


def module_edges(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its source (module level or in a function)."""
    files = module_files(root)
    known = set(files)
    edges: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges[name].update(_targets(node, name, is_package, known))
    return edges


def package_of(module: str, files: dict[str, Path] | None = None) -> str:
    """The package a module belongs to (a package's ``__init__`` belongs to the package itself)."""
    files = files if files is not None else module_files()
    return module if files[module].name == "__init__.py" else module.rpartition(".")[0]


def package_edges(root: Path = ROOT) -> dict[tuple[str, str], list[str]]:
    """(package, package) -> the module edges behind it, for edges that cross a package boundary."""
    files = module_files(root)
    out: dict[tuple[str, str], list[str]] = {}
    for source, targets in module_edges(root).items():
        for target in sorted(targets):
            pair = (package_of(source, files), package_of(target, files))
            if pair[0] != pair[1]:
                out.setdefault(pair, []).append(f"{source} -> {target}")
    return dict(sorted(out.items()))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected group of two or more modules, as one cycle through it (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # recursion depth is bounded by the module count (under 100)
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return [_one_cycle(group, edges) for group in groups]


def _one_cycle(group: list[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group (breadth-first)."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(edges[node] & members):
                if nxt == start:
                    return paths[node] + [start]
                if nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    return group


def main(argv: list[str] | None = None) -> int:
    """Print the import edges (package level by default); with --cycles exit 1 when there is a cycle."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.devtools.imports", description=__doc__.splitlines()[0])
    parser.add_argument("--modules", action="store_true", help="module-to-module edges instead of packages")
    parser.add_argument("--cycles", action="store_true", help="print import cycles; exit status 1 if any")
    args = parser.parse_args(argv)
    edges = module_edges()
    if args.cycles:
        found = cycles(edges)
        for cycle in found:
            print(" -> ".join(cycle))
        print(f"{len(found)} import cycle(s)", file=sys.stderr)
        return int(bool(found))
    if args.modules:
        for source in sorted(edges):
            if edges[source]:
                print(f"{source} -> {', '.join(sorted(edges[source]))}")
        return 0
    for (source, target), behind in package_edges().items():
        modules = sorted({edge.split(" -> ")[1] for edge in behind})
        print(f"{source} -> {target}  ({len(behind)} import{'s' if len(behind) > 1 else ''} of {', '.join(modules)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
