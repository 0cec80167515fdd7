"""The code identity of what computes a cell: a registered method's or task's version, origin and source hash.

A cell's key must change when the code that computes it changes, or a rerun serves the old numbers.
Following open_lth (docs/harness.md, "Code identity"): a built-in at its first version keeps the key it
always had, so published folders stay complete; a bumped version (``register_method(..., version=2)``,
a task's ``version``) or a plug-in puts its identity into the cell config. The hash of the source is
not in the key: it is recorded in ``provenance.code`` and compared on every run, so a record computed
by other code is *stale*: the run names it and reruns it (``--keep-stale`` keeps it, marked).

The source hash covers the registered object, the callables of its spec (a method's ``groups``,
``label``, ``nominal``, ``validate``) and every function or class of the same top-level package that
they name (helpers such as ``methods.exact_magnitude_masks``), each normalised with ``ast`` (no
comments, docstrings, decorators or formatting). ``tests/test_code_versions.py`` checks the built-in
methods against ``tests/reference/code_versions.json``.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import textwrap
import types
from importlib import metadata
from pathlib import Path

from benchmarks.registry import METHODS, TASKS, Registry

SOURCE_HASH_LENGTH = 12
FIRST_VERSION = 1  # a built-in at this version keeps its old cell key
# Modules loaded from a file with ``--plugin path.py``: module name -> the file (benchmarks/plugins.py fills it).
PLUGIN_FILES: dict[str, Path] = {}


def normalised_source(obj) -> str:
    """The object's source as ``ast.unparse`` writes it: no comments, docstrings, decorators or formatting."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.decorator_list = []  # registration metadata is not the computation (and holds the version)
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def _codes(code: types.CodeType):
    """A code object and every code object nested in it (inner functions, lambdas, comprehensions)."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _functions(obj) -> list:
    """The plain functions an object consists of: itself, or a class's methods."""
    if isinstance(obj, type):
        members = [getattr(m, "__func__", m) for m in vars(obj).values()]
        members += [m.fget for m in vars(obj).values() if isinstance(m, property) and m.fget]
        return [m for m in members if isinstance(m, types.FunctionType)]
    return [obj] if isinstance(obj, types.FunctionType) else []


def _root(obj) -> str:
    return (getattr(obj, "__module__", None) or "").split(".")[0]


def code_closure(*objects) -> list:
    """The objects with every function or class of their own top-level package that they name, sorted by name."""
    found: dict[str, object] = {}
    stack = [o for o in objects if o is not None]
    while stack:
        obj = stack.pop()
        name = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
        if name in found:
            continue
        found[name] = obj
        root = _root(obj)
        for fn in _functions(obj):
            for code in _codes(fn.__code__):
                for ref in code.co_names:
                    target = fn.__globals__.get(ref)
                    if isinstance(target, (types.FunctionType, type)) and _root(target) == root and root:
                        stack.append(target)
    return [found[name] for name in sorted(found)]


def source_digest(*objects) -> str:
    """A short sha256 of the normalised source of ``objects`` and the helpers they name (see the module doc)."""
    digest = hashlib.sha256()
    for obj in code_closure(*objects):
        try:
            text = normalised_source(obj)
        except (OSError, TypeError, SyntaxError):  # no source (built in C, made at run time): its name only
            text = "<no source>"
        digest.update(f"{obj.__module__}.{obj.__qualname__}\n{text}\n".encode())
    return digest.hexdigest()[:SOURCE_HASH_LENGTH]


def _registered(registry: Registry, name: str):
    """What ``name`` names, as code: the object, or an instance's class (tasks are instances)."""
    obj = registry.get(name)
    return obj if isinstance(obj, (types.FunctionType, type)) else type(obj)


def is_builtin(registry: Registry, name: str) -> bool:
    """True when ``name`` was registered by the package that holds the registry's built-ins."""
    return _root(_registered(registry, name)) == (registry.builtins or "").split(".")[0]


def plugin_origin(obj) -> str:
    """Where a plug-in comes from: ``dist==version`` of its installed distribution, its file name
    (``--plugin file.py``) or its module name."""
    module = getattr(obj, "__module__", "") or ""
    if module in PLUGIN_FILES:
        return PLUGIN_FILES[module].name
    dists = metadata.packages_distributions().get(module.split(".")[0], [])
    if dists:
        return f"{dists[0]}=={metadata.version(dists[0])}"
    return f"module {module}"


def _version(registry: Registry, name: str):
    if registry is METHODS:
        spec = METHODS.meta(name).get("spec")
        return getattr(spec, "version", FIRST_VERSION)
    return getattr(registry.get(name), "version", FIRST_VERSION)


def _spec_callables(registry: Registry, name: str) -> list:
    if registry is not METHODS:
        return []
    spec = METHODS.meta(name).get("spec")
    return [getattr(spec, f, None) for f in ("groups", "validate", "label", "nominal")] if spec else []


@functools.cache
def _cached_digest(*objects) -> str:
    # keyed by the objects themselves (held, so an id is never reused): a reloaded plug-in is new code
    return source_digest(*objects)


def identity(registry: Registry, name: str) -> dict:
    """{name, version, source (hash), plugin (origin; plug-ins only)} of a registered method or task."""
    obj = _registered(registry, name)
    extra = [c for c in _spec_callables(registry, name) if isinstance(c, types.FunctionType)]
    out = {"name": name, "version": _version(registry, name), "source": _cached_digest(obj, *extra)}
    if not is_builtin(registry, name):
        out["plugin"] = _cached_origin(obj)
    return out


@functools.cache
def _cached_origin(obj) -> str:
    return plugin_origin(obj)  # scanning the installed distributions takes a while: once per object


def key_fields(registry: Registry, name: str) -> dict:
    """What joins the cell config for this entry: nothing for a built-in at its first version (old keys stay);
    ``<kind>_version`` once bumped; ``<kind>_plugin`` (its origin) for a plug-in. Tasks key their version already."""
    ident = identity(registry, name)
    prefix = registry.kind.split()[-1]
    out = {}
    if registry is METHODS and ident["version"] != FIRST_VERSION:
        out[f"{prefix}_version"] = ident["version"]
    if "plugin" in ident:
        out[f"{prefix}_plugin"] = ident["plugin"]
    return out


def cell_code(config: dict) -> dict:
    """The code identity of a cell's registered method and task ({} for parts that are not registered)."""
    out = {}
    for field, registry in (("method", METHODS), ("task", TASKS)):
        name = config.get(field)
        if isinstance(name, str) and name in registry:
            out[field] = identity(registry, name)
    return out


def stale_reasons(recorded: dict | None, current: dict) -> list[str]:
    """Why a record's code identity is not today's, one phrase per part (empty: not stale).

    A record without ``provenance.code`` predates code identities: its key vouches for the version, so it
    is not stale. Built-in tasks compare versions only (their version is in the key; their code is the
    harness's, tested by the regression references); methods and plug-in tasks compare their source.
    """
    if not isinstance(recorded, dict):
        return []
    out = []
    for part, now in current.items():
        then = recorded.get(part)
        if not isinstance(then, dict):
            continue
        name = now["name"]
        if then.get("version") != now["version"]:
            out.append(f"{part} {name} version changed ({then.get('version')} -> {now['version']})")
        elif then.get("plugin") != now.get("plugin"):
            out.append(f"{part} {name} plug-in changed ({then.get('plugin')} -> {now.get('plugin')})")
        elif then.get("source") != now["source"] and (part == "method" or "plugin" in now):
            out.append(f"{part} {name} source changed ({then.get('source')} -> {now['source']})")
    return out
