"""Open the HTML leaderboard in headless Chromium and check the rendered DOM (table, rows, notes, sorting).

Needs the Debian ``chromium`` package (.ci/run installs it); skipped, saying so, when no browser binary exists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import html5lib
import pytest

from benchmarks import store
from reports.leaderboard import build_board
from reports.prune_finetune import render_board
from reports.tables import shown_label
from tests.golden import golden

pytestmark = pytest.mark.browser
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
NS = {"h": "http://www.w3.org/1999/xhtml"}
CASE = "bert-fig6"
NO_BROWSER = "no Chromium binary on PATH (install the Debian package `chromium`; .ci/run does)"


def browser() -> str | None:
    """The first headless-capable browser on PATH (or $PRUNEBENCH_BROWSER)."""
    return os.environ.get("PRUNEBENCH_BROWSER") or next(filter(None, map(shutil.which, BROWSERS)), None)


def dump_dom(page: Path, profile: Path) -> str:
    """The DOM after the page's scripts ran, as Chromium serialises it."""
    exe = browser()
    if exe is None:
        pytest.skip(NO_BROWSER)
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The golden case's full HTML page, with its plots, written to a temporary folder; and its board."""
    if browser() is None:
        pytest.skip(NO_BROWSER)
    folder = tmp_path_factory.mktemp("browser")
    loaded = store.load_records(golden.RECORDS / CASE)
    case = golden.CASES[CASE]
    board = build_board(CASE, golden.case_cells(CASE), loaded.records, loaded.corrupt, model="bert-base-uncased",
                        scale="full", seeds=case["seeds"])
    page = folder / "board.html"
    page.write_text(render_board(board, "html", page))
    return page, board


def parse(dom: str):
    return html5lib.parse(dom, namespaceHTMLElements=True)


def test_table_rows_footnotes_and_plots_are_in_the_rendered_dom(rendered, tmp_path):
    page, board = rendered
    doc = parse(dump_dom(page, tmp_path / "profile"))
    table = doc.find(".//h:table[@id='leaderboard']", NS)
    assert table is not None, "no leaderboard table in the DOM"
    assert table.get("data-sortable") == "ready", "the sort script did not run"
    heads = table.findall("h:thead/h:tr/h:th", NS)
    assert len(heads) == len(board.columns) + 2 and all("sortable" in h.get("class", "") for h in heads)
    labels = [tr.get("data-label") for tr in table.findall("h:tbody/h:tr[@data-label]", NS)]
    assert labels == [shown_label(r) for r in board.rows]  # dense is shown as "dense"
    # the trivial-baseline row is shown but is not a ranked row: no data-label, so sorting leaves it alone
    assert len(table.findall("h:tbody[@data-bucket='baseline']/h:tr[@class='baseline']", NS)) == 1
    groups = ["".join(th.itertext()) for th in table.findall("h:tbody/h:tr[@class='group']/h:th", NS)]
    assert groups == ["dense", "sparsity 0.1", "sparsity 0.3"]
    notes = doc.findall(".//h:ol[@class='notes']/h:li", NS)
    assert ["".join(li.itertext()) for li in notes] == board.footnotes
    links = {a.get("href") for a in table.iter(f"{{{NS['h']}}}a")}
    assert links == {f"#fn-{n}" for n in range(1, len(board.footnotes) + 1)}  # every note is referenced
    marks = ["".join(td.itertext()) for td in table.iter(f"{{{NS['h']}}}td") if "status" in td.get("class", "")]
    assert marks and all(re.match(r"(missing|skipped|failed|unreadable)\d", m) for m in marks)  # never blank
    images = doc.findall(".//h:figure/h:img", NS)
    assert len(images) == len(board.columns) and all(i.get("src").startswith("data:image/png;base64,") for i in images)


def test_clicking_a_header_sorts_rows_inside_each_bucket(rendered, tmp_path):
    page, board = rendered
    clicked = tmp_path / "clicked.html"
    # one click on "MRPC" sorts descending (best first)
    script = "<script>document.querySelectorAll('#leaderboard thead th')[1].click();</script>"
    clicked.write_text(page.read_text().replace("</body>", script + "\n</body>"))
    doc = parse(dump_dom(clicked, tmp_path / "profile"))
    table = doc.find(".//h:table[@id='leaderboard']", NS)
    assert table.findall("h:thead/h:tr/h:th", NS)[1].get("aria-sort") == "descending"
    for body in table.findall("h:tbody", NS):
        rows = body.findall("h:tr[@data-label]", NS)
        keys = [float(r.findall("h:td", NS)[1].get("data-sort")) for r in rows]
        assert keys == sorted(keys, reverse=True), f"bucket {body.get('data-bucket')} not sorted: {keys}"
    order = [tr.get("data-label") for tr in table.findall("h:tbody/h:tr[@data-label]", NS)]
    shown = [shown_label(r) for r in board.rows]
    assert order != shown, "sorting changed nothing; the fixture should not be pre-sorted"


def test_wide_table_scrolls_in_its_box_with_method_column_and_bucket_labels_held(rendered, tmp_path):
    page, _ = rendered
    scrolled = tmp_path / "scrolled.html"
    # scroll the table's own box right, then measure where the method cell and a bucket label sit in the viewport
    probe = """<script>
    var wrap = document.querySelector('.table-wrap'); var before = wrap.getBoundingClientRect().left;
    wrap.scrollLeft = 10000;
    var cell = document.querySelector('#leaderboard tbody tr[data-label] td.label');
    var label = document.querySelector('#leaderboard tr.group th > span');
    document.body.setAttribute('data-probe', JSON.stringify({wrap: before, scrolled: wrap.scrollLeft,
      cell: cell.getBoundingClientRect().left, label: label.getBoundingClientRect().left,
      page: document.documentElement.scrollWidth, viewport: window.innerWidth}));
    </script>"""
    scrolled.write_text(page.read_text().replace("</body>", probe + "\n</body>"))
    doc = parse(dump_dom(scrolled, tmp_path / "profile"))
    got = json.loads(doc.find(".//h:body", NS).get("data-probe"))
    assert got["scrolled"] > 0, f"the table fits the default 800 px window, so nothing scrolled: {got}"
    assert got["page"] <= got["viewport"], f"the page itself is wider than the window: {got}"
    assert abs(got["cell"] - got["wrap"]) < 2, f"the method column moved with the scroll: {got}"
    assert 0 <= got["label"] - got["wrap"] < 30, f"the bucket label scrolled out of view: {got}"
