"""Results store: atomic writes, resume semantics, corrupt records, one-call DataFrame."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
from conftest import FakeGrid
from errors_doc import check

from benchmarks import paths, store
from benchmarks.errors import UserError
from benchmarks.runner import expand, run_suite


def _no_temp_files(folder) -> bool:
    return not [p for p in os.listdir(folder) if p.endswith(".tmp")]


def test_write_json_atomic_interrupted_mid_write(tmp_path, monkeypatch):
    target = tmp_path / "rec.json"
    store.write_json_atomic(target, {"v": 1})

    real_fdopen = store.os.fdopen

    class HalfWritten:  # the temporary file receives part of the text, then the disk "fills"
        def __init__(self, fd, mode):
            self.fh = real_fdopen(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, text):
            self.fh.write(text[: len(text) // 2])
            raise OSError("disk full")

    monkeypatch.setattr(store.os, "fdopen", HalfWritten)
    with pytest.raises(OSError):
        store.write_json_atomic(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}  # the old record is intact
    assert _no_temp_files(tmp_path)


def test_write_json_atomic_rename_fails(tmp_path, monkeypatch):
    target = tmp_path / "new.json"

    def boom(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(store.os, "replace", boom)
    with pytest.raises(OSError):
        store.write_json_atomic(target, {"v": 1})
    assert not target.exists()  # nothing half-written under the record's name
    assert _no_temp_files(tmp_path)


def test_write_text_atomic_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "report.md"
    store.write_text_atomic(target, "old")
    monkeypatch.setattr(store.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError("no")))
    with pytest.raises(OSError):
        store.write_text_atomic(target, "new")
    assert target.read_text() == "old"
    assert _no_temp_files(tmp_path)


def _statuses(results) -> dict:
    return {r["config"]["id"]: r["status"] for r in store.load_records(results).records.values()}


def test_resume_skips_ok_retries_failed_and_skipped(tmp_path, fake_kind):
    suite = fake_kind([(1, "ok"), (2, "fail"), (3, "skip"), (4, "ok")])
    results = tmp_path / "results"
    first = run_suite(suite, results, None, progress=False)
    assert (first.total, first.ran, first.ok, len(first.failed), len(first.data_skipped)) == (4, 4, 2, 1, 1)
    assert first.exit_code == 1
    assert _statuses(results) == {1: "ok", 2: "failed", 3: "skipped", 4: "ok"}
    failed = next(r for r in store.load_records(results).records.values() if r["status"] == "failed")
    assert "cell 2 broke" in failed["error"] and "traceback" in failed

    second = run_suite(suite, results, None, progress=False)
    assert second.skipped_done == 2 and second.ran == 2
    assert FakeGrid.runs == {1: 1, 2: 2, 3: 2, 4: 1}  # ok cells never ran again

    # A suite of only the ok cells has nothing left to do:
    ok_suite = fake_kind([(1, "ok"), (4, "ok")])
    third = run_suite(ok_suite, results, None, progress=False)
    assert third.ran == 0 and third.exit_code == 0
    assert len(os.listdir(paths.records_dir(results))) == 4
    assert _no_temp_files(paths.records_dir(results))


def test_corrupt_record_is_named_never_used_and_rerun(tmp_path, fake_kind, capsys):
    suite = fake_kind([(1, "ok"), (2, "ok")])
    results = tmp_path / "results"
    run_suite(suite, results, None, progress=False)
    cell = next(c for c in expand(suite) if c.config["id"] == 2)
    path = paths.record_path(results, cell.key)
    path.write_text(path.read_text()[:40])  # truncated, as by a crash of a non-atomic writer

    loaded = store.load_records(results)
    assert path.name in loaded.corrupt and cell.key not in loaded.records
    frame = store.records_frame(results)
    assert len(frame) == 1 and path.name in frame.attrs["corrupt"]

    capsys.readouterr()
    summary = run_suite(suite, results, None, progress=False)
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and path.name in warnings[0]
    check("store:corrupt-record-rerun", warnings[0], 0)
    assert summary.ran == 1 and summary.corrupt == [path.name]
    assert store.read_record(path)["status"] == "ok"  # rewritten atomically
    assert FakeGrid.runs == {1: 1, 2: 2}


UNREADABLE = [("truncated", '{"key": "x"'), ("not-a-mapping", "[]"), ("no-key", '{"status": "ok"}'),
              ("binary", "\x00\x01"), ("empty", "")]


@pytest.mark.parametrize("name,content", UNREADABLE, ids=[u[0] for u in UNREADABLE])
def test_unreadable_records_reported_by_name(tmp_path, name, content):
    folder = paths.records_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / "abc.json").write_text(content)
    loaded = store.load_records(tmp_path)
    assert list(loaded.corrupt) == ["abc.json"] and not loaded.records
    assert "abc.json" in loaded.corrupt["abc.json"]
    assert store.record_state(tmp_path, "abc") == store.CORRUPT
    check(f"store:record-{name}", loaded.corrupt["abc.json"], 0)


def test_record_key_must_match_file_name(tmp_path):
    store.write_json_atomic(paths.record_path(tmp_path, "aaa"), {"key": "bbb", "status": "ok"})
    corrupt = store.load_records(tmp_path).corrupt
    assert "aaa.json" in corrupt
    check("store:record-key-not-file-name", corrupt["aaa.json"], 0)


def test_user_error_in_a_cell_is_not_a_failed_cell(tmp_path, fake_kind):
    suite = fake_kind([(1, "bad-input")])
    with pytest.raises(UserError):
        run_suite(suite, tmp_path / "results", None, progress=False)
    assert not paths.records_dir(tmp_path / "results").exists()


def test_records_frame_one_call(tmp_path, fake_kind):
    suite = fake_kind([(1, "ok"), (2, "ok"), (3, "fail")])
    results = tmp_path / "results"
    run_suite(suite, results, None, progress=False)
    frame = store.records_frame(results)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 3
    assert {"key", "status", "metric.score", "id", "sparsity_before", "sparsity_after", "git_sha"} <= set(frame.columns)
    assert sorted(frame.loc[frame.status == "ok", "metric.score"]) == [1.0, 2.0]
    assert set(frame.attrs["records"]) == set(frame.key)
    record = frame.attrs["records"][frame.key.iloc[0]]
    assert {"config", "metrics", "sparsity", "timings", "provenance"} <= set(record)
    assert {"git_sha", "git_dirty", "versions", "device", "cpu", "data"} <= set(record["provenance"])
    cpu = record["provenance"]["cpu"]  # which CPU and kernel set computed it (float32 training differs by ISA)
    assert cpu["model"] and cpu["torch_capability"] in {"DEFAULT", "NO AVX", "AVX2", "AVX512", "ZVECTOR", "SVE256"}
    sub = store.records_frame(results, keys=[frame.key.iloc[0]])
    assert len(sub) == 1


def test_records_frame_empty_folder(tmp_path):
    frame = store.records_frame(tmp_path / "nothing")
    assert isinstance(frame, pd.DataFrame) and frame.empty
