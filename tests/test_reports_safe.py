"""Reports are safe on hostile input and faults: user strings escaped in Markdown, the format follows --out,
report and plots written whole or not at all, local models named without their path, damaged arrays noted."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from errors_doc import check
from markdown_it import MarkdownIt
from test_reports import SUITE, board, cell, rec

from benchmarks import predictions, store
from benchmarks.cli import main
from benchmarks.config import Cell
from reports import bert_correlations, mnist, tables, toolkit

# Strings a hostile (or careless) user can put in a suite, a model path or a record's error.
SCRIPT = "<script>alert(1)</script>"
HOSTILE = [SCRIPT, "a`b <img src=x onerror=alert(1)>", "# heading", "1. item", "- item", "| cell | x |",
           "[link](javascript:alert(1))", "**bold** _em_ ~~gone~~", "&lt;b&gt; &amp;", "line\n\n<div>block</div>",
           "back\\slash `code` ```fence```", "    indented", "> quote", "![img](x.png)", "<!-- comment -->",
           "<https://example.org>", "x<y a_b __init__", "=== setext", "+ plus", "2) two"]


def parse(markdown: str) -> list:
    """Every token of ``markdown`` (children included), as GitHub reads it: CommonMark + tables + strikethrough."""
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    out = []
    for token in md.parse(markdown):
        out.append(token)
        out.extend(token.children or [])
    return out


def rendered_text(tokens: list) -> str:
    """The visible text of the inline tokens among ``tokens`` (their text and code spans), one space between."""
    parts = []
    for token in (t for t in tokens if t.type == "inline"):
        parts.append("".join(" " if c.type in ("softbreak", "hardbreak") else c.content for c in token.children
                             if c.type in ("text", "code_inline", "softbreak", "hardbreak")))
    return " ".join(parts)


def markup(tokens: list) -> set[str]:
    """Token types that would make a user string into markup."""
    bad = {"html_inline", "html_block", "link_open", "image", "em_open", "strong_open", "s_open", "heading_open",
           "bullet_list_open", "ordered_list_open", "blockquote_open", "code_block", "fence", "table_open", "hr"}
    return {t.type for t in tokens} & bad


# -- the escaping helpers -----------------------------------------------------------------------------

@pytest.mark.parametrize("text", HOSTILE)
def test_md_text_shows_any_string_as_written_and_makes_no_markup(text):
    """At the start of a block (block=True) and inside a line: the text as written, and no markup."""
    for source in (toolkit.md_text(text, block=True), "x " + toolkit.md_text(text)):
        tokens = parse(source)
        assert not markup(tokens), source
        shown = rendered_text(tokens)
        assert shown.split() == (text.split() if source[:2] != "x " else ["x", *text.split()]), source


@pytest.mark.parametrize("text", HOSTILE)
def test_md_text_in_a_table_cell_stays_in_its_cell(text):
    table = toolkit.table([[text, "after"]], ["name", "next"], "md")
    tokens = parse(table)
    assert [t.type for t in tokens].count("td_open") == 2  # the '|' in the string did not open a third cell
    cells = [tokens[i + 1] for i, t in enumerate(tokens) if t.type == "td_open"]
    assert rendered_text(cells[:1]).split() == text.split()
    assert not markup(cells[0].children)


@pytest.mark.parametrize("text", ["/home/u/my`model", "``x``", "`lead", "trail`", " spaced ", "a|b", SCRIPT])
def test_md_code_is_one_code_span_holding_the_string_exactly(text):
    for in_table in (False, True):
        span = toolkit.md_code(text, in_table)
        tokens = parse(f"| c |\n|---|\n| {span} |" if in_table else f"x {span} y")
        codes = [t for t in tokens if t.type == "code_inline"]
        assert len(codes) == 1 and codes[0].content == text, (text, span)
        assert not markup(tokens) - {"table_open"}


def test_model_name_never_shows_a_folder_path():
    local = {"model": "tiny_bert0", "weights_sha256": "ab" * 32}
    assert toolkit.model_name("/home/alice/models/tiny_bert0", local) == "tiny_bert0"
    assert toolkit.model_name("./models/tiny", {"model": "./models/tiny", "weights_sha256": "0"}) == "tiny"
    assert toolkit.model_name("minilm-l6", {"model": "minilm-l6", "weights_sha256": "0"}) == "minilm-l6"
    assert toolkit.model_name("google-bert/bert-base-uncased", {"revision": "main"}) == "google-bert/bert-base-uncased"
    assert toolkit.model_name(r"C:\Users\alice\bert") == "bert"
    assert toolkit.model_name("~/bert") == "bert"


# -- every Markdown renderer ------------------------------------------------------------------------

def _hostile_board(model: str = "/home/alice/m`x <b>bold"):
    """A leaderboard whose suite name, description, model, scale, a label and a record error are hostile."""
    dense, glob = cell("dense", None, "sst2"), cell("global", 0.3, "sst2")
    glob.config["label"] = "full-0.3 <script>x</script>|`"
    b = board([(dense, rec(dense, {"accuracy": 0.9})), (glob, rec(glob, status="failed", error=SCRIPT + " | boom"))])
    b.title, b.description, b.model, b.scale = SCRIPT, "# not a heading\n<div>x</div>", model, "`cpu` <i>"
    b.model_identity = {}
    return b


def test_leaderboard_markdown_escapes_every_user_string():
    """The suite name, description, model path (with a backtick), scale, a row label and a record's error:
    none becomes HTML or markup; the model and scale are code spans holding the string exactly."""
    md = tables.board_markdown(_hostile_board())
    tokens = parse(md)
    assert not {t.type for t in tokens} & {"html_inline", "html_block"}
    codes = [t.content for t in tokens if t.type == "code_inline"]
    assert "m`x <b>bold" in codes and "`cpu` <i>" in codes  # a path: its folder name only
    headings = [rendered_text([tokens[i + 1]]) for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings[0].startswith(SCRIPT)  # shown as text
    visible = rendered_text(tokens)
    assert "# not a heading <div>x</div>" in visible and "full-0.3 <script>x</script>|`" in visible
    assert f"failed: {SCRIPT} | boom" in visible
    assert "/home/alice" not in md


def test_mnist_markdown_escapes_the_suite_name_and_description():
    suite = SimpleNamespace(name=SCRIPT, description="<img src=x onerror=alert(1)> `x`")
    frame = pd.DataFrame()
    frame.attrs.update(records={}, cells=[Cell({"kind": "mnist-correlations"}, "- <b>label</b>")])
    for render in (mnist.render_correlations, mnist.render_recipes, mnist.render_init):
        tokens = parse(render(suite, frame, "md", None))
        assert not {t.type for t in tokens} & {"html_inline", "html_block"}, render.__name__
        visible = rendered_text(tokens)
        assert SCRIPT in visible and "<img src=x onerror=alert(1)> `x`" in visible and "- <b>label</b>" in visible


def test_bert_correlations_markdown_escapes_and_names_a_local_model_without_its_path():
    suite = SimpleNamespace(name=SCRIPT, description="d", model="/home/alice/models/m`odel")
    identity = {"model": "m`odel", "weights_sha256": "c" * 64}
    cells = [Cell({"kind": "bert-correlations", "model": identity, "prune_rate": 0.5}, "x"),
             Cell({"kind": "bert-correlations", "model": identity, "prune_rate": 0.7}, "y")]
    failed = {"status": "failed", "error": "<script>boom</script>"}
    frame = pd.DataFrame()
    frame.attrs.update(records={cells[1].key: failed}, cells=cells)
    md = bert_correlations.render_bert_correlations(suite, frame, "md", None)
    tokens = parse(md)
    assert not {t.type for t in tokens} & {"html_inline", "html_block"}
    assert "/home/alice" not in md and "m`odel, prune rate 0.5" in rendered_text(tokens)
    commands = [t.content for t in tokens if t.type == "code_inline"]
    assert commands == [f"python -m benchmarks run --suite {SCRIPT} --model MODEL_FOLDER"] * 2
    assert "failed: <script>boom</script>" in rendered_text(tokens)
    html = bert_correlations.render_bert_correlations(suite, frame, "html", None)
    assert "/home/alice" not in html and "<script>boom" not in html


# -- the report command --------------------------------------------------------------------------------

@pytest.fixture()
def suite_results(tmp_path):
    """A suite file and a results folder with a record for every cell (fabricated values), sst2 with arrays."""
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE)
    return path, _fill(path, tmp_path / "results")


def _report(path, results, *extra) -> list[str]:
    return ["report", "--suite-file", str(path), "--results", str(results), *extra]


@pytest.mark.parametrize("name,first", [("board.html", "<!DOCTYPE html>"), ("board.htm", "<!DOCTYPE html>"),
                                        ("board.md", "# report-test"), ("board.markdown", "# report-test"),
                                        ("board.csv", "bucket,row,method,")])
def test_the_format_follows_the_out_extension(suite_results, tmp_path, name, first):
    path, results = suite_results
    out = tmp_path / "out" / name
    assert main(_report(path, results, "--out", str(out))) == 0
    assert out.read_text().startswith(first)


def test_an_explicit_format_that_agrees_or_an_extension_without_a_format_is_fine(suite_results, tmp_path):
    path, results = suite_results
    assert main(_report(path, results, "--format", "html", "--out", str(tmp_path / "a.html"))) == 0
    assert main(_report(path, results, "--format", "html", "--out", str(tmp_path / "page.txt"))) == 0
    assert (tmp_path / "page.txt").read_text().startswith("<!DOCTYPE html>")
    assert main(_report(path, results, "--out", str(tmp_path / "noext"))) == 0
    assert (tmp_path / "noext").read_text().startswith("# report-test")


FORMAT_CASES = [
    ("format-md-out-html", ["--format", "md", "--out", "{tmp}/board.html"], "contradicts"),
    ("format-html-out-md", ["--format", "html", "--out", "{tmp}/board.md"], "contradicts"),
    ("out-unknown-extension", ["--out", "{tmp}/board.pdf"], "no report format"),
    ("out-plots-folder-is-a-file", ["--out", "{tmp}/board.md"], "is a file"),
    # --table claims is a CSV table of a suite's report
    ("table-claims-not-csv", ["--table", "claims", "--format", "md"], "is a CSV table"),
    ("table-claims-out-html", ["--table", "claims", "--out", "{tmp}/claims.html"], "is a CSV table"),
    ("table-with-compare", ["--table", "claims", "--compare", "a=x", "b=y"], "drop --table"),
]


@pytest.mark.parametrize("case", FORMAT_CASES, ids=[c[0] for c in FORMAT_CASES])
def test_report_format_and_out_mistakes_exit_2_writing_nothing(case, suite_results, tmp_path, capsys):
    case_id, extra, expected = case
    path, results = suite_results
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    if case_id == "out-plots-folder-is-a-file":
        (out_dir / "board_plots").write_text("not a folder")
    before = sorted(p.name for p in out_dir.iterdir())
    code = main(_report(path, results, *[a.format(tmp=out_dir) for a in extra]))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert sorted(p.name for p in out_dir.iterdir()) == before
    check(f"report:{case_id}", lines[0], 2)


def test_csv_on_stdout_is_one_tidy_table(suite_results, capsys):
    """``report --format csv`` prints a table pandas reads back: a line per method row and column, nothing else."""
    import io

    path, results = suite_results
    assert main(_report(path, results, "--format", "csv")) == 0
    text = capsys.readouterr().out
    assert text.endswith("\n") and not text.endswith("\n\n")
    table = pd.read_csv(io.StringIO(text))
    from reports.export import FIELDS

    assert list(table.columns) == list(FIELDS)
    assert len(table) == table["row"].nunique() * table["column"].nunique()
    assert set(table["status"]) == {"ok"} and table["value"].notna().all()


def test_csv_of_a_kind_without_a_table_is_bad_input(tmp_path, capsys):
    """Only leaderboards have a CSV form: another suite kind with --format csv is exit 2, one line, nothing
    written."""
    out = tmp_path / "out"
    out.mkdir()
    code = main(["report", "--suite", "mnist-init", "--results", str(tmp_path), "--out", str(out / "t.csv")])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "has no csv report" in lines[0], lines
    assert list(out.iterdir()) == []
    check("report:csv-other-kind", lines[0], 2)


@pytest.fixture()
def claims_results(tmp_path):
    """``suite_results`` with a random row beside global, so the claims compare a pair (on SST-2, which has
    per-example arrays; MRPC has none, so it is left out)."""
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.replace("  - {method: global, sparsity: [0.3]}",
                                  "  - {method: global, sparsity: [0.3]}\n  - {method: random, sparsity: [0.3]}"))
    return path, _fill(path, tmp_path / "results")


def _fill(path: Path, results: Path) -> Path:
    """A record for every cell of the suite at ``path`` (fabricated values), sst2 with per-example arrays."""
    from benchmarks.config import load_suite
    from benchmarks.runner import expand

    label = np.arange(200) % 2
    for i, c in enumerate(expand(load_suite(path=path))):
        record = rec(c, {"accuracy": 0.8 + 0.01 * i})
        if c.config["task"] == "sst2":  # the record's accuracy is its arrays'
            share = 0.6 if c.config["method"] == "random" else 0.85
            pred = np.where(np.random.default_rng(i).uniform(size=200) < share, label, 1 - label)
            record = rec(c, {"accuracy": float((pred == label).mean())})
            store.write_bytes_atomic(predictions.predictions_path(results, c.key),
                                     predictions.to_bytes({"pred": pred, "label": label}))
            record["predictions"] = f"{c.key}.npz"
        store.write_record(results, record)
    return results


def test_the_claims_table_on_stdout_is_one_tidy_table(claims_results, capsys):
    """``report --format csv --table claims`` prints the claims as a table pandas reads back: the comparison of
    global with random on SST-2 (with its interval), MRPC left out (no per-example arrays), the paper's rows."""
    import io

    from reports.export import CLAIM_FIELDS

    path, results = claims_results
    assert main(_report(path, results, "--format", "csv", "--table", "claims")) == 0
    text = capsys.readouterr().out
    assert text.endswith("\n") and not text.endswith("\n\n")
    table = pd.read_csv(io.StringIO(text))
    assert list(table.columns) == list(CLAIM_FIELDS)
    ours = table[(table["source"] == "records") & (table["claim"] == "global-best")]
    compared = ours[ours["column_admissible"] == True]  # noqa: E712 - a pandas mask
    assert list(zip(compared["column"], compared["first"], compared["second"])) == [
        ("SST2", "full-0.3", "random-0.3")]
    line = compared.iloc[0]
    assert line["ci_low"] < line["effect"] < line["ci_high"] and line["ci_low"] > 0 and line["verdict"] == "reproduced"
    assert list(ours[ours["column_admissible"] == False]["column"]) == ["MRPC"]  # noqa: E712
    assert (table["source"] == "paper").sum() > 0


def test_the_claims_table_goes_to_a_csv_file(claims_results, tmp_path):
    path, results = claims_results
    out = tmp_path / "out" / "claims.csv"
    assert main(_report(path, results, "--table", "claims", "--out", str(out))) == 0
    assert out.read_text().startswith("source,claim,claim_text,")


def test_claims_table_of_a_kind_without_claims_is_bad_input(tmp_path, capsys):
    """The claims are checked on leaderboards only: another suite kind with --table claims is exit 2, one line."""
    out = tmp_path / "out"
    out.mkdir()
    code = main(["report", "--suite", "mnist-init", "--results", str(tmp_path), "--table", "claims",
                 "--out", str(out / "t.csv")])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "has no claims table" in lines[0], lines
    assert list(out.iterdir()) == []
    check("report:claims-other-kind", lines[0], 2)


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["plots", "report-file"])
@pytest.mark.parametrize("fmt", ["md", "html"])
def test_a_full_disk_leaves_the_old_report_and_no_debris(suite_results, tmp_path, monkeypatch, capsys, where, fmt):
    """ENOSPC while writing a plot or the report file: one line, exit 1; the report written before is intact,
    with its plots; no empty plots folder, no partial file, no staging folder, no folder made for --out."""
    path, results = suite_results
    out = tmp_path / "out" / f"board.{fmt}"
    assert main(_report(path, results, "--out", str(out))) == 0
    before = {p.relative_to(tmp_path / "out"): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert any(p.parts[0] == "board_plots" for p in before)
    store.write_record(results, rec(*_first_cell(results), {"accuracy": 0.5}))  # the new report would differ
    capsys.readouterr()
    if where == "plots":
        monkeypatch.setattr(toolkit, "write_bytes_atomic", _full_disk)
    else:
        monkeypatch.setattr(store, "write_text_atomic", _full_disk)
    fresh = tmp_path / "new" / "deeper" / f"board.{fmt}"
    for target in (out, fresh):
        code = main(_report(path, results, "--out", str(target)))
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert code == 1 and len(lines) == 1 and "No space left on device" in lines[0], lines
    after = {p.relative_to(tmp_path / "out"): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert after == before
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"board_plots", f"board.{fmt}"}
    assert not (tmp_path / "new").exists()
    if fmt == "md":
        check(f"report:disk-full-{where}", lines[0], 1)


def _first_cell(results: Path) -> tuple:
    record = next(iter(store.load_records(results).records.values()))
    return (Cell(record["config"], record["label"]),)


def test_a_full_disk_while_printing_an_html_page_is_one_line(suite_results, monkeypatch, capsys):
    path, results = suite_results
    monkeypatch.setattr(toolkit, "write_bytes_atomic", _full_disk)
    code = main(_report(path, results, "--format", "html"))
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and not out, err
    check("report:disk-full-html-stdout", lines[0], 1)


def test_a_replaced_report_drops_plots_of_columns_that_left(suite_results, tmp_path):
    """The plots folder is replaced whole: a plot of the old report that the new one does not draw is gone."""
    path, results = suite_results
    out = tmp_path / "board.md"
    assert main(_report(path, results, "--out", str(out))) == 0
    stale = tmp_path / "board_plots" / "old-column.png"
    stale.write_bytes(b"old")
    assert main(_report(path, results, "--out", str(out))) == 0
    assert not stale.exists() and (tmp_path / "board_plots" / "sst2.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_local_model_folder_is_named_with_its_weights_sha_never_its_path(tmp_path, tiny_bert, capsys):
    """report --model <absolute folder>: the folder's name and weights sha256, never the absolute path."""
    from conftest import tiny_suite_yaml

    suite = tmp_path / "suite.yaml"
    suite.write_text(tiny_suite_yaml(tiny_bert))
    (tmp_path / "results").mkdir()
    for fmt in ("md", "html"):
        assert main(["report", "--suite-file", str(suite), "--model", str(tiny_bert.resolve()),
                     "--results", str(tmp_path / "results"), "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert str(tiny_bert.resolve()) not in out and str(tiny_bert.parent) not in out
        assert tiny_bert.name in out and "weights sha256 " in out


# -- damaged per-example arrays ------------------------------------------------------------------------

def _damage_missing(path: Path, record: dict) -> None:
    path.unlink()


def _damage_truncated(path: Path, record: dict) -> None:
    path.write_bytes(path.read_bytes()[:100])


def _damage_garbage(path: Path, record: dict) -> None:
    path.write_bytes(b"not an npz archive " * 20)


def _damage_empty(path: Path, record: dict) -> None:
    path.write_bytes(b"")


def _damage_folder(path: Path, record: dict) -> None:
    path.unlink()
    path.mkdir()


def _damage_outside(path: Path, record: dict) -> None:
    record["predictions"] = "../../secret.npz"


DAMAGE = {"missing": _damage_missing, "truncated": _damage_truncated, "garbage": _damage_garbage,
          "empty": _damage_empty, "folder": _damage_folder, "outside-records": _damage_outside}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_npz_is_noted_in_the_footnotes_and_the_report_still_renders(suite_results, capsys, kind):
    path, results = suite_results
    records = store.load_records(results).records
    key, record = next((k, r) for k, r in records.items() if r.get("predictions") and r["config"]["seed"] == 0
                       and r["config"]["method"] == "dense")
    DAMAGE[kind](predictions.predictions_path(results, key), record)
    store.write_record(results, record)
    assert main(_report(path, results)) == 0
    md = capsys.readouterr().out
    notes = [line.split(". ", 1)[1] for line in md.split("Notes:", 1)[1].split("\n\n")[1].splitlines()]
    note = next(n for n in notes if n.startswith("no interval:"))
    assert key in note or "secret" in note
    row = next(line for line in md.splitlines() if line.startswith("| dense "))
    number = notes.index(note) + 1
    assert f"[{number}]" in row  # the dense SST-2 cell points at the note
    check(f"report:npz-{kind}", note.replace("\\", ""), 0)


def test_records_without_arrays_get_no_note(suite_results, capsys):
    path, results = suite_results
    assert main(_report(path, results)) == 0
    assert "no interval:" not in capsys.readouterr().out


def test_the_committed_records_have_no_array_problems():
    """Every published board's arrays load (a note would otherwise appear on the committed boards)."""
    from benchmarks.devtools.grids import COMMITTED
    from reports.render import array_problems

    repo = Path(__file__).resolve().parents[1]
    for folder in COMMITTED:
        records = {}
        for p in (repo / folder / "records").glob("*.json"):
            records[p.stem] = json.loads(p.read_text())
        assert array_problems(repo / folder, records) == {}, folder
