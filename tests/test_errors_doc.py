"""docs/errors.md lists at least 60 distinct cases, each one exercised by a test that checks its message."""

from __future__ import annotations

import re
from pathlib import Path

import errors_doc

TESTS = Path(__file__).resolve().parent


def _tested_ids() -> set[str]:
    import test_bad_input
    import test_cli
    import test_migrate
    import test_preflight
    import test_report_grid
    import test_reports_safe
    import test_schema
    import test_store

    ids = {f"cli:{c[0]}" for c in test_cli.CASES} | {f"bad:{c[0]}" for c in test_bad_input.CASES}
    ids |= {f"bad:report-out-{w}" for w in ("folder", "under-file")}
    ids |= {f"bad:ok-record-metrics-{v}" for v in ("missing", "NoneType", "list", "0.9")}
    ids |= {f"store:record-{name}" for name, _ in test_store.UNREADABLE}
    ids |= {f"schema:{b[0]}" for b in test_schema.BAD}
    ids |= {f"bad:{c[0]}" for c in test_preflight.CASES}
    ids |= {f"bad:ok-record-npz-{d}-rerun" for d in ("truncated", "garbage", "missing")}
    ids |= {f"bad:report-npz-{d}" for d in ("truncated", "garbage")}
    ids |= {f"identity:{c[0]}" for c in test_report_grid.PLUGIN_CASES}
    ids |= {f"report:{c[0]}" for c in test_reports_safe.FORMAT_CASES}
    ids |= {f"report:npz-{kind}" for kind in test_reports_safe.DAMAGE}
    ids |= {f"report:disk-full-{where}" for where in ("plots", "report-file")}
    ids |= {f"migrate:{c[0]}" for c in test_migrate.BAD_FOLDERS + test_migrate.CORRUPT}
    for path in TESTS.glob("test_*.py"):  # ids written out literally in a check(...) call
        ids |= set(re.findall(r'check\("([a-z]+:[^"]+)"', path.read_text()))
    return ids


def test_catalogue_lists_at_least_sixty_cases():
    cases = errors_doc.documented()
    assert len(cases) >= 60, len(cases)
    assert len({c["message"] for c in cases.values()}) >= 60  # distinct messages, not one case sixty times
    assert all(c["case"].strip() for c in cases.values()), "every case says what it is"


def test_every_listed_case_is_tested_and_every_tested_case_listed():
    assert set(errors_doc.documented()) == _tested_ids()


FIX = re.compile(r"; |e\.g\.|\(see --help\)|^error: name |: (give|pass|use|choose) ")


def test_messages_name_a_fix():
    """Bad input (exit 2) says what to do, after the problem: '; <fix>', 'e.g. ...', or an imperative."""
    missing = [k for k, c in errors_doc.documented().items() if c["exit"] == 2 and not FIX.search(c["message"])]
    assert not missing


def test_patterns_match_only_what_they_should():
    assert errors_doc.matches("error: x (…); fix", "error: x (ValueError: y); fix")
    assert not errors_doc.matches("error: x (…); fix", "error: x (ValueError: y)")
    assert errors_doc.normalize("/tmp/pytest-of-u/pytest-3/test_a0/r/0123456789abcdef0123.json") == "<tmp>/r/<key>.json"
