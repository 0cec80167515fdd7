"""Golden outputs: the reports of fixed records must not change unless intended.

After an intended change, regenerate and review the diff:  python tests/golden/golden.py
"""

from __future__ import annotations

import difflib

import html5lib
import pytest

from benchmarks import store
from tests.golden import golden


@pytest.mark.parametrize("fmt", golden.FORMATS)
@pytest.mark.parametrize("case", sorted(golden.CASES))
def test_report_matches_saved_output(case, fmt):
    for path, actual in golden.saved_parts(case, fmt).items():
        _matches_saved(path, actual, fmt)


def _matches_saved(path, actual: str, fmt: str) -> None:
    expected = path.read_text()
    if fmt == "html":
        parser = html5lib.HTMLParser()
        parser.parse(actual)
        assert parser.errors == [], "the page is not conforming HTML5"
    if fmt.endswith("csv"):  # full float precision: the last digit may move with a numpy release, so 1e-9 relative
        import io

        import pandas as pd

        pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(actual)), pd.read_csv(io.StringIO(expected)),
                                      check_exact=False, rtol=1e-9)
        return
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), "saved", "now", n=1))
        pytest.fail(f"{path.name} differs from {path}; if intended, run "
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


@pytest.mark.parametrize("case", sorted(golden.CASES))
def test_the_csv_holds_what_the_markdown_board_shows(case):
    """``report --format csv``: one line per method row and column, in board order, whose value, interval and
    marks (bold, ≈, n.d.) are the ones the Markdown board prints for that cell."""
    import io
    import math
    import re

    import pandas as pd

    table = pd.read_csv(io.StringIO(golden.render_case(case, "csv")))
    md = golden.render_case(case, "md").splitlines()
    first = next(i for i, line in enumerate(md) if line.startswith("| "))
    board = md[first:next(i for i in range(first, len(md)) if not md[i].startswith("|"))]  # the first table
    shown = [[c.strip() for c in line.strip().strip("|").split("|")][2:-1] for line in board[2:]
             if not line.startswith("| baseline")]  # cells between the method and achieved-sparsity columns
    width = table["column"].nunique()
    assert len(table) == len(shown) * width and all(len(cells) == width for cells in shown)
    number = re.compile(r"-?\d+\.\d+")
    for i, cells in enumerate(shown):
        for j, text in enumerate(cells):
            line = table.iloc[i * width + j]
            if math.isnan(line["value"]):
                assert not number.match(text.strip("*")), (case, text)
                continue
            assert number.search(text).group() == f"{line['value']:.3f}", (case, text, line["value"])
            interval = re.search(r"\[(-?\d+\.\d+), (-?\d+\.\d+)\]", text)
            assert (interval is not None) == (not math.isnan(line["ci_low"])), (case, text)
            if interval:
                assert interval.groups() == (f"{line['ci_low']:.3f}", f"{line['ci_high']:.3f}"), (case, text)
            assert ("**" in text, "≈" in text, "n.d." in text, "✓" in text) == (
                line["best"], line["equivalent_to_dense"], line["indistinct_from_dense"], line["matches_dense"]), \
                (case, text)
            paper = re.search(r"paper (-?\d+\.\d+)", text)
            assert (paper.group(1) if paper else None) == (
                None if math.isnan(line["paper_value"]) else f"{line['paper_value']:.3f}"), (case, text)


def _md_claims(md: str) -> dict[str, list[dict]]:
    """The Markdown claims sections, per source ('records', 'paper'): each claim's title, verdict, comparison
    count, left-out line, task verdicts and comparison cells (sparsity, pair, column) -> text."""
    import re

    sections = re.split(r"^## The paper's claims, checked on ", md, flags=re.M)[1:]
    found = {}
    for source, section in zip(("records", "paper"), sections):
        section = re.split(r"^## (?!The paper's claims)", section, flags=re.M)[0]
        claims = []
        for block in re.split(r"^### \d+\. ", section, flags=re.M)[1:]:
            lines = block.splitlines()
            verdict = re.search(r"^Verdict: \*\*(.+?)\*\* · (\d+|no) comparison", block, flags=re.M)
            left = next((line for line in lines if line.startswith("Columns left out")), "")
            tables = [[[c.strip() for c in line.strip().strip("|").split("|")] for line in lines
                       if line.startswith("|")]]
            rows = [r for r in tables[0] if not set("".join(r)) <= set("-")]
            tasks, cells, head = {}, {}, None
            for r in rows:
                if r[0] in ("task (primary metric)", "sparsity"):
                    head = r
                elif head[0] == "sparsity":
                    cells.update({(r[0], r[1], title): text for title, text in zip(head[2:], r[2:]) if text})
                else:
                    tasks[r[0]] = r[1]
            claims.append({"title": lines[0], "verdict": verdict.group(1),
                           "count": 0 if verdict.group(2) == "no" else int(verdict.group(2)), "left": left,
                           "tasks": tasks, "cells": cells})
        found[source] = claims
    return found


@pytest.mark.parametrize("case", sorted(golden.CASES))
def test_the_claims_csv_holds_what_the_markdown_claims_section_shows(case):
    """``report --format csv --table claims``: per source and claim, in order, the verdict, the number of
    comparisons, the columns left out and each task's verdict are the Markdown section's, and every comparison's
    effect, interval and mark are in the Markdown table's cell for its pair and column."""
    import io
    import math

    import pandas as pd

    from reports.claims import MARKS, PAPER_WORDS

    marks = {**MARKS, **{PAPER_WORDS[v]: m for v, m in MARKS.items()}}
    table = pd.read_csv(io.StringIO(golden.render_case(case, "claims-csv")))
    md = _md_claims(golden.render_case(case, "md"))
    assert set(table["source"]) == set(md) == {"records", "paper"}
    for source, claims in md.items():
        mine = table[table["source"] == source]
        assert list(dict.fromkeys(mine["claim_text"])) == [c["title"] for c in claims], (case, source)
        for shown, (_, lines) in zip(claims, mine.groupby("claim_text", sort=False)):
            assert set(lines["claim_verdict"]) == {shown["verdict"]}, (case, shown["title"])
            compared = lines[lines["column_admissible"] == True]  # noqa: E712 - a pandas mask
            assert len(compared) == shown["count"], (case, shown["title"])
            for _, out in lines[lines["column_admissible"] == False].iterrows():  # noqa: E712
                assert f"{out['column']}: {out['why']}" in shown["left"], (case, out["column"])
            assert {c: v for c, v in zip(compared["column"], compared["task_verdict"])} == shown["tasks"], case
            for _, c in compared.iterrows():
                text = shown["cells"][(f"{c['sparsity']:g}", f"{c['first']} vs {c['second']}", c["column"])]
                if math.isnan(c["effect"]):
                    assert text.startswith(marks[c["verdict"]]), (case, text)
                    continue
                expected = f"{c['effect']:+.3f}"
                if not math.isnan(c["ci_low"]):
                    expected += f" [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]"
                assert text.startswith(f"{expected} {marks[c['verdict']]}"), (case, text, expected)
