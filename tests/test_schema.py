"""The record schema (issue 12, item 3): every committed and every newly written record validates."""

from __future__ import annotations

import copy
import json

import pytest
from errors_doc import check

from benchmarks import paths, store
from benchmarks.schema import SCHEMA_FILE, schema_text, validate_record

COMMITTED = sorted(p for root in ("published", "docs/examples", "tests/golden/records")
                   for p in (paths.REPO_ROOT / root).glob("**/records/*.json"))


def test_schema_file_is_generated_from_the_code():
    assert SCHEMA_FILE.read_text() == schema_text(), "run: python -m benchmarks.schema --write"


def test_there_are_committed_records():
    assert len(COMMITTED) > 200
    assert {p.relative_to(paths.REPO_ROOT).parts[0] for p in COMMITTED} == {"published", "docs", "tests"}


@pytest.mark.parametrize("path", COMMITTED, ids=[str(p.relative_to(paths.REPO_ROOT)) for p in COMMITTED])
def test_every_committed_record_validates(path):
    record = json.loads(path.read_text())
    validate_record(record)
    assert store.read_record(path) == record


def _good() -> dict:
    return json.loads(COMMITTED[0].read_text())


def _set(path: str, value):
    def change(record):
        *parents, last = path.split(".")
        target = record
        for p in parents:
            target = target[p]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
    return change


_DELETE = object()

BAD = [
    ("no-metrics", _set("metrics", _DELETE), "metrics"),
    ("metrics-list", _set("metrics", [0.9]), "metrics"),
    ("metric-is-list", _set("metrics.accuracy", [0.9]), "metrics.accuracy"),
    ("unknown-status", _set("status", "done"), "status"),
    ("ok-with-error", _set("error", "boom"), "an ok record has no error"),
    ("short-key", _set("key", "abc"), "key"),
    ("no-timings", _set("timings", _DELETE), "timings"),
    ("seconds-text", _set("timings.seconds", "1.0"), "timings.seconds"),
    ("no-provenance-sha", _set("provenance.git_sha", _DELETE), "provenance.git_sha"),
    ("config-not-mapping", _set("config", "x"), "config"),
    ("sparsity-text", _set("sparsity.global_after", "0.5"), "sparsity.global_after"),
    # metrics are finite numbers (issue 19 item 3): NaN, Infinity, text and true/false on a metric are refused
    ("metric-nan", _set("metrics.accuracy", float("nan")), "metrics.accuracy"),
    ("metric-infinity", _set("metrics.accuracy", float("inf")), "metrics.accuracy"),
    ("metric-minus-infinity", _set("metrics.accuracy", float("-inf")), "metrics.accuracy"),
    ("metric-text", _set("metrics.accuracy", "0.9"), "metrics.accuracy"),
    ("metric-true", _set("metrics.accuracy", True), "metrics.accuracy"),
    ("metric-flag-as-number-text", _set("metrics.collapsed", "no"), "metrics.collapsed"),
    ("sparsity-nan", _set("sparsity.global_after", float("nan")), "sparsity.global_after"),
]


@pytest.mark.parametrize("case", BAD, ids=[b[0] for b in BAD])
def test_invalid_records_are_refused_with_the_field_named(case, tmp_path):
    name, change, where = case
    record = copy.deepcopy(_good())
    change(record)
    with pytest.raises(ValueError) as info:
        validate_record(record)
    assert where in str(info.value) and "\n" not in str(info.value)
    path = paths.record_path(tmp_path, record["key"] if name != "short-key" else "abc")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    corrupt = store.load_records(tmp_path).corrupt  # the reason the report's footnote gives
    check(f"schema:{name}", corrupt[path.name], 0)


def test_extra_fields_are_allowed():
    record = {**_good(), "predictions": "k.npz", "higher_is_better": True}
    assert validate_record(record) is record


def test_every_record_a_run_writes_validates(tmp_path, fake_kind):
    from benchmarks.runner import run_suite

    results = tmp_path / "results"
    run_suite(fake_kind([(1, "ok"), (2, "fail"), (3, "skip")]), results, None, progress=False)
    files = sorted(paths.records_dir(results).glob("*.json"))
    assert len(files) == 3
    for path in files:
        validate_record(json.loads(path.read_text()))


def test_a_cell_whose_record_does_not_fit_becomes_a_failed_cell(tmp_path, fake_kind, monkeypatch):
    from conftest import FakeGrid

    from benchmarks.kinds import CellOutcome
    from benchmarks.runner import run_suite

    monkeypatch.setattr(FakeGrid, "run", lambda self, cell, ctx: CellOutcome(metrics={"score": [1, 2]}))
    results = tmp_path / "results"
    summary = run_suite(fake_kind([(1, "ok")]), results, None, progress=False)
    assert summary.ok == 0 and len(summary.failed) == 1
    assert "does not fit the schema: metrics.score" in summary.failed[0][1]
    (record,) = store.load_records(results).records.values()
    assert record["status"] == "failed" and not store.is_done(results, record["key"])


@pytest.mark.parametrize("value", [0.5, 1, 0, None])
def test_a_metric_is_a_finite_number_or_null(value):
    record = copy.deepcopy(_good())
    record["metrics"]["accuracy"] = value
    assert validate_record(record) is record


def test_flag_metrics_may_be_true_or_false():
    record = copy.deepcopy(_good())
    record["metrics"].update({"collapsed": True, "mismatched_collapsed": False, "constant_predictions": True})
    assert validate_record(record) is record
