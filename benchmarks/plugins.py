"""Plug-ins named on the command line: ``--plugin path/to/file.py`` or ``--plugin package.module`` (repeatable).

The quick loop of a method developer: a file whose import registers methods (or tasks, models, suite
kinds) with the decorators of benchmarks.registry, loaded before the command looks anything up, with no
package to install. A packaged plug-in uses the entry points instead (README, "Plug-ins"). A file is
imported as module ``prunebench_plugin_<stem>``; its methods' cells carry the file name as their origin
(benchmarks/identity.py) and every record lists the ``--plugin`` arguments in ``provenance.plugins``.
Loading the same file again (a second command in one process: tests, notebooks) replaces what it registered.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path

from benchmarks.errors import UserError
from benchmarks.identity import PLUGIN_FILES
from benchmarks.registry import REGISTRIES

LOADED: list[str] = []  # the --plugin arguments of this process, in order (recorded in provenance)


def load_plugins(specs: list[str]) -> None:
    """Import each ``--plugin`` argument (a .py file or a module name); bad input raises UserError.

    ``LOADED`` then lists exactly these (what this command's records name in provenance)."""
    LOADED.clear()
    for spec in specs:
        load_plugin(spec)


def load_plugin(spec: str) -> str:
    """Import one plug-in and return its module name; a missing file or module, or one that fails, is bad input."""
    spec = spec.strip()
    if spec.endswith(".py") or "/" in spec or "\\" in spec:
        name = _load_file(spec)
    else:
        name = _load_module(spec)
    if spec not in LOADED:
        LOADED.append(spec)
    return name


def _module_name(path: Path) -> str:
    return "prunebench_plugin_" + re.sub(r"\W", "_", path.stem)


def _forget(module: str) -> None:
    """Unregister what an earlier load of ``module`` registered, so that loading it again replaces it."""
    for registry in REGISTRIES:
        registry.unregister_module(module)


def _load_file(spec: str) -> str:
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"--plugin {spec}: no such file; give a .py file that registers methods, "
                        f"or an importable module (package.module)")
    name = _module_name(path)
    _forget(name)
    loader = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(loader)
    sys.modules[name] = module
    PLUGIN_FILES[name] = path.resolve()
    try:
        loader.loader.exec_module(module)
    except Exception as exc:  # anything the file raises is the plug-in's fault: one line naming it
        sys.modules.pop(name, None)
        _forget(name)
        raise UserError(f"--plugin {spec} failed to import ({_first_line(exc)}); fix the file") from None
    return name


def _load_module(spec: str) -> str:
    try:
        importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and spec.startswith(exc.name):
            raise UserError(f"--plugin {spec}: no module named {exc.name!r}; install it, put it on PYTHONPATH, "
                            f"or give the path of a .py file") from None
        raise UserError(f"--plugin {spec} failed to import ({_first_line(exc)}); fix the module") from None
    except Exception as exc:
        raise UserError(f"--plugin {spec} failed to import ({_first_line(exc)}); fix the module") from None
    return spec


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0][:200]}" if text else exc.__class__.__name__
