"""The report toolkit: reruns give identical bytes in every file, no global matplotlib state, one slug,
one did-you-mean hint, one table helper, atomic figure files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from benchmarks.cli import main as cli_main
from benchmarks.errors import did_you_mean
from benchmarks.paths import slug
from reports import toolkit

ROOT = Path(__file__).resolve().parents[1]
# Every report kind, from records committed in the repository: (name, CLI arguments without --format/--out).
REPORTS = {
    "smoke": ["--suite", "smoke", "--results", "docs/examples/smoke/results"],
    "mnist-correlations": ["--suite", "mnist-correlations", "--results", "published/mnist-cpu/correlations"],
    "mnist-recipes": ["--suite", "mnist-recipes", "--results", "published/mnist-cpu/recipes"],
    "mnist-init": ["--suite", "mnist-init", "--results", "published/mnist-cpu/init"],
    "bert-correlations": ["--suite", "bert-correlations", "--model", "minilm-l6",
                          "--results", "docs/examples/bert-correlations/results"],
}


def _absolute(args: list[str]) -> list[str]:
    return [str(ROOT / a) if a.startswith(("docs/", "published/")) else a for a in args]


def _render(kind: str, folder: Path) -> None:
    """One report kind as Markdown and HTML with its plots beside them; the golden board with intervals as Markdown."""
    if kind == "zeroshot-arrays":
        from reports.prune_finetune import render_board
        from tests.golden import golden

        out = folder / "board.md"
        folder.mkdir(parents=True, exist_ok=True)
        out.write_text(render_board(_golden_board(golden, kind), "md", out))
        return
    for fmt in ("md", "html"):
        out = folder / f"{kind}.{fmt}"
        assert cli_main(["report", *_absolute(REPORTS[kind]), "--format", fmt, "--out", str(out)]) == 0


def _golden_board(golden, name: str):
    from benchmarks import store
    from reports.leaderboard import build_board
    from reports.render import load_predictions

    loaded = store.load_records(golden.RECORDS / name)
    case = golden.CASES[name]
    return build_board(name, golden.case_cells(name), loaded.records, loaded.corrupt, description=name,
                       model=case["model"]["model"], scale="full", seeds=case["seeds"],
                       predictions=load_predictions(golden.RECORDS / name, loaded.records))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kind", [*REPORTS, "zeroshot-arrays"])
def test_rendering_the_same_records_twice_gives_identical_bytes_in_every_file(kind, tmp_path, capsys):
    """Leaderboards, MNIST and BERT-correlation reports (md, html, PNG, SVG) rendered twice into two folders."""
    _render(kind, tmp_path / "a")
    _render(kind, tmp_path / "b")
    capsys.readouterr()
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert sorted(first) == sorted(second)
    suffixes = {Path(name).suffix for name in first}
    plotted = kind not in ("mnist-recipes", "mnist-init")  # tables only
    assert suffixes == ({".md", ".png", ".svg"} if kind == "zeroshot-arrays" else
                        {".md", ".html", ".png", ".svg"} if plotted else {".md", ".html"})
    different = [name for name in first if first[name] != second[name]]
    assert not different, f"files differ between two renderings of the same records: {different}"
    for name, data in first.items():
        if name.endswith(".svg"):
            assert b"<dc:date>" not in data and b"Matplotlib v" not in data, name  # no date, no version stamp
        if name.endswith(".png"):
            assert b"Software" not in data, name


PROBE = r"""
import json, sys
import matplotlib
before = {k: repr(v) for k, v in dict.items(matplotlib.rcParams)}
import reports.toolkit, reports.plots, reports.tables, reports.leaderboard, reports.mnist, reports.bert_correlations
imported = {k: repr(v) for k, v in dict.items(matplotlib.rcParams)}
from benchmarks.cli import main
for args in json.loads(sys.argv[1]):
    assert main(["report", *args]) == 0
after = {k: repr(v) for k, v in dict.items(matplotlib.rcParams)}
print(json.dumps({"import": sorted(k for k in before if imported[k] != before[k]),
                  "render": sorted(k for k in before if after[k] != before[k]),
                  "pyplot": "matplotlib.pyplot" in sys.modules}))
"""


def test_importing_and_rendering_reports_changes_no_global_matplotlib_state(tmp_path):
    """No matplotlib.use, no rcParams edits and no pyplot, at import or while rendering plots (fresh process)."""
    runs = [[*_absolute(REPORTS[name]), "--format", "md", "--out", str(tmp_path / f"{name}.md")]
            for name in ("smoke", "mnist-correlations", "bert-correlations")]
    # a backend the reports would never pick: matplotlib.use("Agg") anywhere would show as a change
    env = {**os.environ, "MPLBACKEND": "pdf", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(runs)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    changed = json.loads(done.stdout.strip().splitlines()[-1])
    assert changed == {"import": [], "render": [], "pyplot": False}
    assert (tmp_path / "smoke_plots" / "sst2.svg").is_file() and (tmp_path / "mnist-correlations_plots").is_dir()


def test_figure_writer_is_atomic_and_overwrites(tmp_path):
    with toolkit.style():
        fig = toolkit.new_figure(figsize=(2, 2), dpi=50)
        fig.add_subplot(title="achieved sparsity").plot([0, 1], [1, 0])
    (tmp_path / "f.png").write_bytes(b"old")
    written = toolkit.write_figure(fig, tmp_path / "f")
    assert written == {"png": tmp_path / "f.png", "svg": tmp_path / "f.svg"}
    assert written["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    texts = [el.text for el in ET.parse(written["svg"]).iter("{http://www.w3.org/2000/svg}text")]
    assert "achieved sparsity" in texts  # labels are text, not glyph paths (svg.fonttype none)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "f.svg"]  # no temp files left behind
    assert toolkit.write_figure(fig, tmp_path / "model-0.5_fig3")["svg"].name == "model-0.5_fig3.svg"
    with pytest.raises(ValueError, match="figure format 'pdf'"):
        toolkit.figure_bytes(fig, "pdf")


def test_png_figures_are_palette_images_that_look_like_the_full_colour_render():
    """figure_bytes' PNG is an 8-bit palette image of matplotlib's RGBA render: same size, pixels within a few
    levels, transparency flattened on white, under half the full-colour file (a third, measured) on a board-like
    plot."""
    import io

    import numpy as np
    from PIL import Image

    with toolkit.style():
        fig = toolkit.new_figure(figsize=(6.4, 4), dpi=100)
        ax = fig.add_subplot()
        for k in range(6):
            ax.errorbar(np.linspace(0, 0.5, 6), np.sin(np.arange(6) + k), yerr=0.1, marker="o", label=f"row {k}")
        ax.axhspan(-0.2, 0.2, color="0.9"), ax.legend(), ax.grid(alpha=0.3)
        full = io.BytesIO()
        fig.savefig(full, format="png", metadata=toolkit.METADATA["png"])
    png = toolkit.figure_bytes(fig, "png")
    assert png == toolkit.figure_bytes(fig, "png")  # deterministic
    with Image.open(io.BytesIO(png)) as small, Image.open(io.BytesIO(full.getvalue())) as big:
        assert small.mode == "P" and small.size == big.size
        diff = np.abs(np.asarray(small.convert("RGB"), dtype=int) - np.asarray(big.convert("RGB"), dtype=int))
    assert diff.mean() < 0.5 and np.quantile(diff, 0.999) <= 24
    assert len(png) * 2 < len(full.getvalue())
    clear = io.BytesIO()
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(clear, format="PNG")
    with Image.open(io.BytesIO(toolkit.palette_png(clear.getvalue()))) as flat:
        assert flat.convert("RGB").getpixel((0, 0)) == (255, 255, 255)


def test_figure_bytes_do_not_depend_on_the_callers_rcparams():
    """A caller's own settings outside the figure (e.g. a salt) do not leak into the report's SVG ids."""
    import matplotlib

    with toolkit.style():
        fig = toolkit.new_figure(figsize=(2, 2))
        fig.add_subplot().plot([0, 1], [1, 0])
    plain = toolkit.figure_bytes(fig, "svg")
    with matplotlib.rc_context({"svg.hashsalt": "someone-else"}):
        assert toolkit.figure_bytes(fig, "svg") == plain


@pytest.mark.parametrize("text, expected", [
    ("MLM ppl. (fitted head)", "mlm-ppl-fitted-head"), ("QNLI (dev split)", "qnli-dev-split"),
    ("minilm-l6-0.5", "minilm-l6-0.5"), ("google-bert/bert-base-uncased 0.5", "google-bert-bert-base-uncased-0.5"),
    ("sgd lr=0.1, [0, 1]", "sgd-lr-0.1-0-1"), ("default", "default"), ("...", "plot"),
])
def test_slug(text, expected):
    assert slug(text) == expected


@pytest.mark.parametrize("name, choices, kwargs, expected", [
    ("sedes", ["name", "seeds", "scales"], {}, "did you mean 'seeds'?"),
    ("sst3", ["sst2", "stsb", "mrpc"], {"n": 3, "cutoff": 0.5}, "did you mean 'sst2', 'stsb'?"),
    ("zzz", ["sst2", "stsb"], {}, ""),
    ("learnig_rate", ["lr", "epochs"], {"aliases": {"learning_rate": "lr"}}, "did you mean 'lr'?"),
    ("lr", ["lr"], {"aliases": {"lr_": "lr"}, "n": 3}, "did you mean 'lr'?"),  # an alias and its target: once
])
def test_did_you_mean(name, choices, kwargs, expected):
    assert did_you_mean(name, choices, **kwargs) == expected


def test_one_table_helper_for_markdown_and_escaped_html():
    assert toolkit.table([["a", "0.50"]], ["f", "acc"], "md") == "| f   | acc   |\n|-----|-------|\n| a   | 0.50  |"
    html = toolkit.html_table([["<b>", "0.50"]], ["f", "acc"])
    assert "&lt;b&gt;" in html and "<b>" not in html and html.startswith("<table>")


def test_html_blocks_escape_their_text():
    blocks = toolkit.html_blocks()
    assert blocks.heading("a < b", 3) == "<h3>a &lt; b</h3>"
    assert blocks.bullets(["x & y"]) == "<ul><li>x &amp; y</li></ul>"
    assert blocks.figure("p.png", 'say "hi"', caption="c") == \
        '<figure><img src="p.png" alt="say &#34;hi&#34;" style="max-width:100%"><figcaption>c</figcaption></figure>'
