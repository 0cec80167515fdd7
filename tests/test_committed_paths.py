"""Nothing committed outside tests/ names a folder of the machine it was made on (home, scratch, work, /tmp).

A report, a NOTE or a data file that cites /work/... or /home/... tells a reader nothing they can open, and
every report rendered from it repeats the path. Commands in docs use relative paths or $(mktemp -d).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# An absolute path into a home, scratch, work or temporary folder, at a word boundary (not the tail of a URL
# or of a relative path such as docs/tmp/x): /home/NAME, /Users/NAME, /root/, /tmp/, /work/, /scratch/,
# and Windows' C:\Users\NAME.
MACHINE_PATH = re.compile(r"(?<![\w.~/-])(?:/(?:home|Users)/[\w.-]+|/(?:root|tmp|work|scratch)/)"
                          r"|\b[A-Za-z]:\\+Users\\+", re.IGNORECASE)
EXEMPT = ("tests/",)  # tests build such paths on purpose (fixtures, this file's own patterns)


def tracked_text_files() -> dict[str, str]:
    """Path -> text of every file git tracks outside ``EXEMPT`` that decodes as UTF-8 (binary files left out)."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], check=True, capture_output=True).stdout
    texts = {}
    for name in filter(None, listed.decode().split("\0")):
        path = REPO / name
        if name.startswith(EXEMPT) or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        try:
            texts[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return texts


def machine_paths(text: str) -> list[str]:
    """The machine paths in ``text``, each with the rest of its word, as found."""
    return [text[m.start():m.end() + 40].split()[0] for m in MACHINE_PATH.finditer(text)]


def _git_checkout() -> bool:
    return shutil.which("git") is not None and (REPO / ".git").exists()


@pytest.mark.skipif(not _git_checkout(), reason="needs git and a git checkout (git ls-files lists what is committed)")
def test_no_tracked_file_outside_tests_names_a_machine_path():
    files = tracked_text_files()
    assert len(files) > 100, "git ls-files listed too few files: the check would pass on nothing"
    found = {name: machine_paths(text) for name, text in files.items()}
    found = {name: hits for name, hits in found.items() if hits}
    assert not found, "absolute machine paths in committed files (use relative paths): " + "; ".join(
        f"{name}: {', '.join(sorted(set(hits))[:3])}" for name, hits in sorted(found.items()))


@pytest.mark.parametrize("text", [
    "typed from /work/shared/spec/000.txt", "cd /work/wt-oneshotpub", "--results /tmp/mnist-full",
    "PRUNEBENCH_DATA_DIR=/work/shared/data", "model `/home/alice/models/bert`", "/root/.cache/x",
    "at /scratch/u/run", r"C:\Users\alice\model", "/Users/bob/prunebench", '"/tmp/x"',
])
def test_the_pattern_finds_machine_paths(text):
    assert machine_paths(text), text


@pytest.mark.parametrize("text", [
    "--results results/mnist-full", "https://example.org/tmp/file", "docs/tmp/x", "../shared/data",
    "$(mktemp -d)", "<tmp>/results/records/<key>.json", "~/.cache/prunebench", "a/home/b",
])
def test_the_pattern_leaves_relative_paths_alone(text):
    assert not machine_paths(text), text
