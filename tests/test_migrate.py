"""benchmarks.migrate: a missing folder is exit 2 with one line; a corrupt record is skipped with a note and
nothing is half-migrated (every record is planned before the first write); a full disk is one line, exit 1."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from errors_doc import check

from benchmarks import migrate, paths, store
from benchmarks.config import canonical_json, config_key

REPO = Path(__file__).resolve().parents[1]


def _old_mnist_record() -> dict:
    """A published MNIST record keyed the old way (run settings in its recipe)."""
    new = json.loads(next((REPO / "published/mnist-cpu/correlations/records").glob("*.json")).read_text())
    old = json.loads(json.dumps(new))
    old["config"]["recipe"].update(chunk=25, threads=1)
    del old["notes"]["run_settings"]
    old.update(key=config_key(old["config"]), config_canonical=canonical_json(old["config"]))
    return old


@pytest.fixture
def results(tmp_path) -> Path:
    folder = tmp_path / "results"
    store.write_record(folder, _old_mnist_record())
    return folder


def _files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in paths.records_dir(folder).iterdir()}


BAD_FOLDERS = [
    ("missing-folder", lambda tmp: [str(tmp / "nope")], "does not exist"),
    ("folder-is-a-file", lambda tmp: [str(tmp / "a_file")], "is a file"),
    ("no-records-folder", lambda tmp: [str(tmp)], "holds no records/"),
    ("no-folder-given", lambda tmp: [], "RESULTS_DIR"),
    ("one-good-one-missing", lambda tmp: [str(tmp / "results"), str(tmp / "nope")], "does not exist"),
]


@pytest.mark.parametrize("case", BAD_FOLDERS, ids=[c[0] for c in BAD_FOLDERS])
def test_a_bad_folder_is_exit_2_with_one_line_and_nothing_written(case, results, tmp_path, capsys):
    case_id, argv, expected = case
    (tmp_path / "a_file").write_text("x")
    before = _files(results)
    code = migrate.main(argv(tmp_path))
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    assert _files(results) == before and not out  # the good folder was not migrated either
    check(f"migrate:{case_id}", lines[0], 2)


CORRUPT = [
    ("record-truncated", lambda p: p.write_text(p.read_text()[:50])),
    ("record-not-utf8", lambda p: p.write_bytes(b"\xff\xfe" * 10)),
    ("record-not-an-object", lambda p: p.write_text("[1, 2]")),
    ("record-config-not-an-object", lambda p: p.write_text(json.dumps({"key": p.stem, "config": "x"}))),
    ("record-unknown-method", lambda p: p.write_text(json.dumps(
        {"key": p.stem, "config": {"kind": "prune-finetune", "method": "nosuch"}, "notes": {}}))),
    ("record-arrays-missing", lambda p: p.write_text(json.dumps({**json.loads(p.read_text()),
                                                                   "predictions": "gone.npz"}))),
]


@pytest.mark.parametrize("case", CORRUPT, ids=[c[0] for c in CORRUPT])
def test_a_corrupt_record_is_skipped_with_a_note_and_the_others_migrate(case, results, capsys):
    """The corrupt file sorts first ('000...'), so a migration that wrote as it read would stop halfway."""
    case_id, damage = case
    bad = paths.records_dir(results) / "00000000000000000000.json"
    other = _old_mnist_record()  # a second old-style record, then damaged
    other["config"]["recipe"]["chunk"] = 50
    bad.write_text(json.dumps(other, indent=1))
    damage(bad)
    bad_bytes = bad.read_bytes()
    assert migrate.main([str(results)]) == 0
    out, err = capsys.readouterr()
    notes = [line for line in err.splitlines() if line.strip()]
    assert len(notes) == 1 and notes[0].startswith("note: ") and bad.name in notes[0], err
    assert bad.read_bytes() == bad_bytes
    assert "1 MNIST record(s) re-keyed" in out
    assert sorted(p.name for p in paths.records_dir(results).iterdir())[0] == bad.name
    check(f"migrate:{case_id}", notes[0], 0)


def test_a_full_disk_is_one_line_exit_1_and_the_record_stays_whole(results, monkeypatch, capsys):
    before = _files(results)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "write_json_atomic", full)
    assert migrate.main([str(results)]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "No space left on device" in lines[0]
    assert _files(results) == before
    check("migrate:disk-full", lines[0], 1)


def test_a_second_migration_changes_nothing(results, capsys):
    assert migrate.main([str(results)]) == 0
    after = _files(results)
    assert migrate.main([str(results)]) == 0
    assert _files(results) == after
    assert "0 MNIST record(s) re-keyed" in capsys.readouterr().out
