"""Fixed records for the report golden tests, and the command that regenerates the saved outputs.

The records under tests/golden/records/<case>/ are synthetic (notes.fixture says so): values come from a
formula below, not from training. They are shaped like the runner's records (same fields) and cover what
the leaderboard must show: several seeds, a failed, a skipped and a missing cell, a seed that failed in
an otherwise complete cell, a dev-split QNLI, pre-trained and fitted MLM heads, and both model cases
(bert-base-uncased: the paper's values inline; MiniLM: the paper's values apart). The case
``zeroshot-arrays`` also writes per-example arrays (records/<key>.npz, benchmarks.predictions) drawn
from a fixed generator, so its report has intervals, bold backed by paired intervals, the ≈ and
collapse marks and a claims section with verdicts.

Regenerate records and expected outputs after an intended change, then review the diff:

    python tests/golden/golden.py

The test (tests/test_reports_golden.py) renders the records and compares with tests/golden/expected/.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks import predictions, store  # noqa: E402
from benchmarks.config import Cell, canonical_json  # noqa: E402
from benchmarks.kinds.prune_finetune import Row  # noqa: E402

HERE = Path(__file__).resolve().parent
FORMATS = ("md", "html", "csv", "claims-csv")  # the saved outputs of each case
SUFFIX = {"claims-csv": "claims.csv"}  # a format's file extension where it is not the format's name
RECORDS = HERE / "records"
EXPECTED = HERE / "expected"
RECIPE = {"batch_size": 32, "epochs": 3, "lr": 2e-05, "max_length": 128, "optimizer": "adamw",
          "warmup_ratio": 0.1, "weight_decay": 0.01}
DEV_SPLIT = ("dev-split: mirror has no train split; fine-tuned on a fixed half of dev (seed 1234), "
             "evaluated on the other half")
# A plausible dense score per task metric and how fast it falls with sparsity (synthetic).
BASE = {("mrpc", "accuracy"): (0.85, 0.20), ("stsb", "pearson"): (0.88, 0.40), ("qnli", "accuracy"): (0.89, 0.25),
        ("sst2", "accuracy"): (0.91, 0.10), ("mlm", "mlm_accuracy"): (0.51, 0.35)}
METRICS = {"mrpc": ["accuracy", "f1"], "stsb": ["pearson", "spearman"], "qnli": ["accuracy"],
           "sst2": ["accuracy"], "mlm": ["mlm_accuracy", "mlm_ppl"]}
MINILM = {"model": "minilm-l6", "weights_sha256": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"}
BERT = {"model": "google-bert/bert-base-uncased", "revision": "main"}

CASES = {
    # the paper's model, three seeds, GLUE + MLM with BERT's own head
    "bert-fig6": {
        "model": BERT, "seeds": [0, 1, 2], "tasks": ["mrpc", "stsb", "qnli", "mlm"],
        "rows": [("dense", None, {}), ("global", 0.1, {}), ("random", 0.1, {}), ("upper", 0.2, {}),
                 ("lower", 0.2, {}), ("global", 0.3, {}), ("random", 0.3, {}), ("lower", 0.6, {})],
        "mlm_head": "pretrained",
        # (label, task, seed) -> ("failed" | "skipped" | "missing", reason)
        "problems": {
            ("random-0.1", "stsb", 1): ("failed", "RuntimeError: CUDA out of memory (fixture)"),
            ("lower-0.6", "qnli", 0): ("skipped", "QNLI train split not in the mirror and no hub access (fixture)"),
            ("lower-0.6", "qnli", 1): ("skipped", "QNLI train split not in the mirror and no hub access (fixture)"),
            ("lower-0.6", "qnli", 2): ("skipped", "QNLI train split not in the mirror and no hub access (fixture)"),
            ("random-0.3", "mlm", 0): ("missing", ""), ("random-0.3", "mlm", 1): ("missing", ""),
            ("random-0.3", "mlm", 2): ("missing", ""),
        },
        "dev_split": ["qnli"],
    },
    # an offline model with one seed: fitted MLM head, mixed rows, the paper's values apart
    "minilm-smoke": {
        "model": MINILM, "seeds": [0], "tasks": ["sst2", "mrpc", "mlm"],
        "rows": [("dense", None, {}), ("global", 0.3, {}), ("random", 0.3, {}), ("upper", 0.6, {}),
                 ("lower", 0.6, {}), ("global", 0.7, {}), ("mixed", None, {"lower": 0.8, "upper": 0.6})],
        "mlm_head": "fitted",
        "problems": {("full-0.7", "sst2", 0): ("failed", "ValueError: loss is nan (fixture)")},
        "dev_split": [],
    },
    # the zero-shot protocol with per-example arrays: intervals, paired bold, ≈, collapse, the claims
    "zeroshot-arrays": {
        "model": MINILM, "seeds": [0], "tasks": ["mrpc", "stsb", "sst2", "mlm"], "protocol": "zeroshot",
        "rows": [("dense", None, {}), ("global", 0.1, {}), ("random", 0.1, {}), ("upper", 0.2, {}),
                 ("lower", 0.2, {}), ("global", 0.45, {}), ("random", 0.45, {}), ("upper", 0.9, {}),
                 ("lower", 0.9, {}), ("global", 0.7, {}), ("random", 0.7, {})],
        "mlm_head": "fitted",
        "problems": {}, "dev_split": [], "arrays": True,
    },
}
# zeroshot-arrays: how much of dense's skill a row keeps at its nominal sparsity (synthetic), per method.
DAMAGE = {"dense": 0.0, "global": 0.6, "lower": 0.8, "upper": 1.6, "random": 2.2}
UNITS = {"mrpc": 240, "stsb": 200, "sst2": 300, "mlm": 48}  # dev examples, or MLM blocks


def label_of(method: str, rate: float | None, options: dict) -> str:
    """Row labels as benchmarks.kinds.prune_finetune prints them."""
    if method == "dense":
        return "full-base"
    if method == "mixed":
        return f"upper-{options['upper']:g}-lower-{options['lower']:g}"
    return f"{'full' if method == 'global' else method}-{rate:g}"


def nominal(method: str, rate: float | None, options: dict) -> float:
    """Global sparsity a row aims at (the records' generator; the board reads Row.nominal, the spec)."""
    if method == "dense":
        return 0.0
    if method == "mixed":
        return (options["upper"] + options["lower"]) / 2
    return rate / 2 if method in ("upper", "lower") else rate


def case_cells(name: str) -> list[Cell]:
    """The grid of a case, in the analysis's order (row x task x seed)."""
    case = CASES[name]
    cells = []
    for method, rate, options in case["rows"]:
        label = label_of(method, rate, options)
        for task in case["tasks"]:
            for seed in case["seeds"]:
                config = {"kind": "prune-finetune", "model": case["model"], "method": method, "sparsity": rate,
                          "options": options, "label": label, "task": task, "task_version": "1",
                          "recipe": RECIPE, "scale": "full", "seed": seed}
                if "protocol" in case:
                    config["protocol"] = case["protocol"]
                # What the suite's expansion carries from the method's spec (nominal sparsity, plot style).
                info = Row(method, rate, tuple(sorted(options.items()))).info()
                cells.append(Cell(config, f"{label} {task} seed={seed}", info))
    return cells


def _metrics(cell: Cell, sparsity: float) -> dict:
    cfg = cell.config
    rng = random.Random(f"{cell.key}")  # deterministic per cell
    penalty = {"random": 2.0, "upper": 1.4}.get(cfg["method"], 1.0)
    out = {}
    for metric in METRICS[cfg["task"]]:
        base, slope = BASE.get((cfg["task"], metric), (0.8, 0.2))
        value = base - slope * penalty * sparsity ** 2 + rng.gauss(0, 0.004)
        out[metric] = round(value, 6)
    if cfg["task"] == "mlm":
        out["mlm_ppl"] = round(22.0 * (1 + 6 * penalty * sparsity ** 2) + rng.gauss(0, 0.3), 6)
    return out


def _rng(*parts) -> np.random.Generator:
    """A generator seeded from text, so every array is a fixed function of its names."""
    return np.random.default_rng(int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:16], 16))


def make_arrays(cell: Cell) -> dict[str, np.ndarray]:
    """Per-example arrays of a zeroshot-arrays cell: rows share the examples and their difficulty (paired)."""
    cfg = cell.config
    task, n = cfg["task"], UNITS[cfg["task"]]
    skill = max(0.05, 1.0 - DAMAGE[cfg["method"]] * nominal(cfg["method"], cfg["sparsity"], cfg["options"]) ** 1.5)
    shared, own = _rng("examples", task), _rng("row", cfg["label"], task)
    if task == "mlm":
        tokens = shared.integers(14, 22, n)
        p = 0.5 * skill
        correct = own.binomial(tokens, p)
        nll = tokens * (2.5 + 3.0 * (1 - skill)) + own.normal(0, 1.0, n)
        return {"mlm_correct": correct, "mlm_tokens": tokens, "mlm_nll": nll.round(4)}
    if task == "stsb":
        gold = shared.uniform(0, 5, n).round(2)
        pred = skill * gold + own.normal(0, 1.2, n) + (1 - skill) * own.normal(0, 2.0, n)
        return {"pred": pred.round(4).astype(np.float32), "label": gold.astype(np.float32)}
    label = shared.integers(0, 2, n)
    difficulty = shared.uniform(0, 1, n)
    correct = difficulty + own.normal(0, 0.15, n) < 0.55 + 0.35 * skill
    pred = np.where(correct, label, 1 - label)
    if cfg["method"] == "random" and nominal(cfg["method"], cfg["sparsity"], cfg["options"]) >= 0.7:
        pred = np.ones(n, dtype=pred.dtype)  # this row's classifier collapsed onto one class
    return {"pred": pred, "label": label}


def metrics_from_arrays(task: str, arrays: dict) -> dict:
    """Record metrics computed directly (not through reports.stats, which the reports use)."""
    from scipy import stats as sps

    if task == "mlm":
        tokens = arrays["mlm_tokens"].sum()
        return {"mlm_accuracy": round(float(arrays["mlm_correct"].sum() / tokens), 6),
                "mlm_ppl": round(float(np.exp(arrays["mlm_nll"].sum() / tokens)), 6)}
    pred, label = arrays["pred"], arrays["label"]
    if task == "stsb":
        return {"pearson": round(float(sps.pearsonr(pred, label)[0]), 6),
                "spearman": round(float(sps.spearmanr(pred, label)[0]), 6)}
    out = {"accuracy": round(float(np.mean(pred == label)), 6)}
    if task == "mrpc":
        from sklearn.metrics import f1_score

        out["f1"] = round(float(f1_score(label, pred)), 6)
    return out


def make_record(name: str, cell: Cell) -> dict | None:
    """A record shaped like the runner's, or None for a cell the case leaves missing."""
    case = CASES[name]
    cfg = cell.config
    problem = case["problems"].get((cfg["label"], cfg["task"], cfg["seed"]))
    if problem and problem[0] == "missing":
        return None
    opts = cfg["options"]
    target = nominal(cfg["method"], cfg["sparsity"], opts)
    achieved = round(target + (0.00002 if target else 0.0), 6)
    status, error = (problem if problem else ("ok", None))
    notes = {"fixture": "synthetic golden-test record, not a measurement"}
    if cfg["task"] == "mlm":
        notes["mlm_head"] = case["mlm_head"]
    if cfg["task"] in case["dev_split"]:
        notes["data_split"] = DEV_SPLIT
    ok = status == "ok"
    arrays = make_arrays(cell) if case.get("arrays") and ok else None
    metrics = (metrics_from_arrays(cfg["task"], arrays) if arrays else _metrics(cell, achieved)) if ok else {}
    extra = {"predictions": f"{cell.key}.npz"} if arrays else {}
    return {
        "key": cell.key, "suite": name, "label": cell.label, "status": status, "error": error,
        "config": cfg, "config_canonical": canonical_json(cfg), **extra,
        "metrics": metrics,
        "sparsity": {"global_before": achieved, "global_after": achieved} if ok else {},
        "notes": notes, "artifacts": {},
        "timings": {"seconds": 1.0, "started": "2026-01-01T00:00:00+00:00"},
        "provenance": {"git_sha": "fixture", "versions": {}, "device": "cpu", "data": {}},
    }


def write_records(name: str) -> Path:
    """Rewrite a case's record folder from scratch; return the results folder."""
    folder = RECORDS / name
    shutil.rmtree(folder, ignore_errors=True)
    for cell in case_cells(name):
        record = make_record(name, cell)
        if record is None:
            continue
        if record.get("predictions"):  # arrays first, so a record never names a missing file
            store.write_bytes_atomic(predictions.predictions_path(folder, cell.key),
                                     predictions.to_bytes(make_arrays(cell)))
        store.write_record(folder, record)
    return folder


def render_case(name: str, fmt: str) -> str:
    """Render a case's saved records (no plots: PNG bytes vary with the matplotlib build)."""
    from reports import tables
    from reports.leaderboard import build_board
    from reports.render import html_document, load_predictions

    loaded = store.load_records(RECORDS / name)
    case = CASES[name]
    board = build_board(name, case_cells(name), loaded.records, loaded.corrupt,
                        description=f"golden-test fixture {name} (synthetic records)",
                        model=case["model"]["model"], scale="full", seeds=case["seeds"],
                        predictions=load_predictions(RECORDS / name, loaded.records))
    if fmt == "md":
        return tables.board_markdown(board)
    if fmt == "csv":
        from reports.export import board_csv

        return board_csv(board)
    if fmt == "claims-csv":
        from reports.export import claims_csv

        return claims_csv(board)
    return html_document(f"{tables.title(board)} leaderboard", tables.board_html(board))


def expected_path(name: str, fmt: str) -> Path:
    """Where a case's saved output lives."""
    return EXPECTED / f"{name}.{SUFFIX.get(fmt, fmt)}"


# The claims table's lines on the paper's printed values are the same for every board: saved once, here (the
# saved outputs travel with every GPU call, whose room is small: tests/test_devicejob.py).
PAPER_CLAIMS = EXPECTED / "paper.claims.csv"


def saved_parts(name: str, fmt: str) -> dict[Path, str]:
    """A case's output in ``fmt`` as the files it is saved in: the claims table's lines on the case's own records
    in the case's file, its lines on the paper's table in PAPER_CLAIMS; every other format whole."""
    text = render_case(name, fmt)
    if fmt != "claims-csv":
        return {expected_path(name, fmt): text}
    head, *lines = text.splitlines(keepends=True)
    ours = [line for line in lines if line.startswith("records,")]
    return {expected_path(name, fmt): head + "".join(ours), PAPER_CLAIMS: head + "".join(lines[len(ours):])}


def regenerate() -> None:
    """Rewrite every case's records and expected outputs."""
    for name in CASES:
        write_records(name)
        for fmt in FORMATS:
            for path, text in saved_parts(name, fmt).items():
                store.write_text_atomic(path, text)
                print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    regenerate()
