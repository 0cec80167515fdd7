"""The README's "Plug-ins" section, run exactly as written: its file, its commands and its pyproject.toml.

The commands run in a shell in a scratch folder holding ``colnorm.py`` and ``pyproject.toml`` as the README
writes them, inside a scratch virtual environment that sees this one's packages but installs into its own
(so ``pip install .`` leaves the test environment alone; no index, no build isolation: offline). The
``run``/``report`` lines train on MiniLM-L6, so they run under the ``slow`` marker; the rest by default.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from benchmarks.paths import REPO_ROOT

README = REPO_ROOT / "README.md"


def section_blocks() -> list[tuple[str, str]]:
    """(language, text) of each fenced code block of the README's "## Plug-ins" section, in order."""
    section = README.read_text().split("\n## Plug-ins\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)


def _lines(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _trains(line: str) -> bool:
    return " run " in line or " report " in line


def test_the_section_is_a_file_its_commands_a_pyproject_and_the_install():
    assert [language for language, _ in section_blocks()] == ["python", "bash", "toml", "bash"]
    assert '"""' in section_blocks()[0][1]  # the example has the docstring a method needs


@pytest.fixture
def sandbox(tmp_path):
    """(folder with the README's files, environment of the scratch virtual environment)."""
    (python_file, quick, toml, _) = (text for _, text in section_blocks())
    work = tmp_path / "work"
    work.mkdir()
    (work / "colnorm.py").write_text(python_file)
    (work / "pyproject.toml").write_text(toml)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    site = next((env_dir / "lib").glob("python*/site-packages"))
    # this environment's packages (torch, prunebench itself, pip, setuptools), after the scratch one's own
    (site / "_parent.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    pip = env_dir / "bin" / "pip"
    pip.write_text(f"#!/bin/sh\nexec {env_dir / 'bin' / 'python'} -m pip \"$@\"\n")
    pip.chmod(0o755)
    env = {**os.environ, "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
           "VIRTUAL_ENV": str(env_dir), "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "PIP_NO_BUILD_ISOLATION": "0",  # pip's inverted switch: 0 turns build isolation off
           "PYTHONPATH": "", "OMP_NUM_THREADS": "1"}
    return work, env


def _shell(line: str, work: Path, env: dict) -> str:
    done = subprocess.run(line, shell=True, cwd=work, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _listed(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("colnorm "))


def test_the_readme_plugin_section_lists_and_installs_as_written(sandbox):
    """Every line but the training run: `list methods --plugin`, then `pip install .` and `list methods`."""
    work, env = sandbox
    _, quick, _, install = (text for _, text in section_blocks())
    listed = [_shell(line, work, env) for line in _lines(quick) if not _trains(line)]
    assert listed and "Per matrix, prune the lowest" in _listed(listed[0])
    without = _shell("python -m benchmarks list methods", work, env)
    assert not any(line.startswith("colnorm ") for line in without.splitlines())  # not installed yet
    outs = [_shell(line, work, env) for line in _lines(install)]
    assert "Per matrix, prune the lowest" in _listed(outs[-1])  # found through the entry point
    site = next((Path(env["VIRTUAL_ENV"]) / "lib").glob("python*/site-packages"))
    assert list(site.glob("prunebench_colnorm-0.1.0.dist-info"))  # installed into the scratch environment
    assert sys.prefix != env["VIRTUAL_ENV"]


@pytest.mark.slow
def test_the_readme_plugin_run_and_report_as_written(sandbox):
    """The quick loop's training run (MiniLM-L6, smoke scale, SST-2: dense and colnorm) and its report."""
    work, env = sandbox
    _, quick, _, _ = (text for _, text in section_blocks())
    outs = [_shell(line, work, env) for line in _lines(quick)]
    board = outs[-1]
    assert "| colnorm-0.5 " in board and "| full-base " in board
