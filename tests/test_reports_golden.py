"""Golden outputs: the reports of fixed records must not change unless intended.

After an intended change, regenerate and review the diff:  python tests/golden/golden.py
"""

from __future__ import annotations

import difflib

import html5lib
import pytest

from benchmarks import store
from tests.golden import golden


@pytest.mark.parametrize("fmt", ["md", "html"])
@pytest.mark.parametrize("case", sorted(golden.CASES))
def test_report_matches_saved_output(case, fmt):
    expected = golden.expected_path(case, fmt).read_text()
    actual = golden.render_case(case, fmt)
    if fmt == "html":
        parser = html5lib.HTMLParser()
        parser.parse(actual)
        assert parser.errors == [], "the page is not conforming HTML5"
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), "saved", "now", n=1))
        pytest.fail(f"{case}.{fmt} differs from {golden.expected_path(case, fmt)}; if intended, run "
                    f"`python tests/golden/golden.py` and review:\n{diff[:4000]}")


@pytest.mark.parametrize("case", sorted(golden.CASES))
def test_saved_records_are_what_the_fixture_generator_makes(case):
    """The committed records match their generator, so the golden files rest on documented inputs."""
    saved = store.load_records(golden.RECORDS / case)
    assert not saved.corrupt
    made = {c.key: golden.make_record(case, c) for c in golden.case_cells(case)}
    assert saved.records == {k: r for k, r in made.items() if r is not None}


@pytest.mark.parametrize("case", [name for name, case in golden.CASES.items() if case.get("arrays")])
def test_saved_arrays_are_what_the_fixture_generator_makes(case):
    """The per-example arrays beside the records are the generator's (npz bytes carry a zip time stamp)."""
    from benchmarks import predictions

    saved = store.load_records(golden.RECORDS / case)
    for cell in golden.case_cells(case):
        record = saved.records[cell.key]
        arrays = predictions.load(golden.RECORDS / case, record)
        made = golden.make_arrays(cell)
        assert arrays is not None and sorted(arrays) == sorted(made)
        for name, values in made.items():
            assert (arrays[name] == values).all() and arrays[name].dtype == values.dtype
