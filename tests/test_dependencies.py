"""Declared dependencies match the imports: every third-party import is declared, every declaration is used."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmarks", "methods", "reports", "suites")
LOCAL = set(PACKAGES) | {"tests"} | {p.stem for p in (REPO / "tests").glob("*.py")}
# pytest plugins are used through fixtures and ini options, not imports; each maps to the use that proves it.
PLUGIN_USES = {"pytest-benchmark": r"\bbenchmark\b", "pytest-timeout": r"^timeout\s*="}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject() -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _names(requirements: list[str]) -> set[str]:
    return {_norm(re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0]) for req in requirements}


def _third_party_imports(folders: tuple[str, ...]) -> set[str]:
    """Top-level module names imported anywhere (module level or inside functions) under ``folders``."""
    found = set()
    for folder in folders:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name not in LOCAL}


def _distributions(modules: set[str]) -> dict[str, str]:
    """Import name -> the installed distribution that provides it."""
    provided = metadata.packages_distributions()
    missing = sorted(m for m in modules if m not in provided)
    assert not missing, f"imported but not installed: {missing}"
    return {module: _norm(provided[module][0]) for module in modules}


def test_package_imports_are_declared() -> None:
    project = _pyproject()
    declared = _names(project["dependencies"]) | _names(
        project["optional-dependencies"]["offline"] + project["optional-dependencies"]["hub"])
    used = _distributions(_third_party_imports(PACKAGES))
    undeclared = {module: dist for module, dist in used.items() if dist not in declared}
    assert not undeclared, f"imported by the packages but not declared in pyproject.toml: {undeclared}"


def test_every_dependency_is_imported() -> None:
    used = set(_distributions(_third_party_imports(PACKAGES)).values())
    unused = _names(_pyproject()["dependencies"]) - used
    assert not unused, f"declared in [project].dependencies but imported nowhere in {PACKAGES}: {sorted(unused)}"


def test_test_extra_matches_test_imports() -> None:
    project = _pyproject()
    test_extra = _names(project["optional-dependencies"]["test"])
    tests_use = set(_distributions(_third_party_imports(("tests",))).values())
    declared = test_extra | _names(project["dependencies"]) | _names(project["optional-dependencies"]["hub"])
    assert not tests_use - declared, f"imported by tests but not declared: {sorted(tests_use - declared)}"
    text = "\n".join(p.read_text() for p in (REPO / "tests").glob("*.py")) + (REPO / "pyproject.toml").read_text()
    plugins = {dist for dist in test_extra if dist in PLUGIN_USES}
    unused_plugins = {dist for dist in plugins if not re.search(PLUGIN_USES[dist], text, re.M)}
    unused = test_extra - tests_use - plugins - _names(project["optional-dependencies"]["offline"])
    assert not unused_plugins | unused, f"test extra entries nothing uses: {sorted(unused_plugins | unused)}"


def test_detector_sees_lazy_imports(tmp_path: Path) -> None:
    """The walk counts imports inside functions too (the kind that dodge import time), so it can fail."""
    source = "def f():\n    import tabulate\n    from scipy import stats\n"
    found = {n.names[0].name if isinstance(n, ast.Import) else n.module
             for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.Import, ast.ImportFrom))}
    assert found == {"tabulate", "scipy"}
