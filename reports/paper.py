"""The paper's published Fig 6 / Fig 7 values (reports/data/paper_fig6_fig7.csv), looked up by row label."""

from __future__ import annotations

import csv
import functools
from importlib import resources

PAPER_FILE = "paper_fig6_fig7.csv"
PAPER_CITATION = ("Bose, Frank and Hempstead (2022), Weight Correlation and Layer Effects in Pruned Feedforward "
                  "and BERT Networks, Figs 6 and 7")
# Paper column title -> (task, metric) in our records. MRPC is read as accuracy and STSB as Pearson
# correlation: the paper does not say, and these are our tasks' headline metrics.
PAPER_COLUMNS = {
    "MRPC": ("mrpc", "accuracy"),
    "STSB": ("stsb", "pearson"),
    "QNLI": ("qnli", "accuracy"),
    "MNLI": ("mnli", "accuracy"),
    "SST2": ("sst2", "accuracy"),
    "MLM Accuracy": ("mlm", "mlm_accuracy"),
    "MLM ppl.": ("mlm", "mlm_ppl"),
}
# Model identities the paper's numbers apply to (the paper used the hub's bert-base-uncased).
PAPER_MODELS = frozenset({"bert-base-uncased", "google-bert/bert-base-uncased"})


@functools.lru_cache(maxsize=1)
def paper_rows() -> tuple[dict, ...]:
    """Every published row: {'figure': int, 'label': str, (task, metric): float, ...}, in the paper's order."""
    text = (resources.files("reports") / "data" / PAPER_FILE).read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    rows = []
    for raw in csv.DictReader(lines):
        row: dict = {"figure": int(raw.pop("figure")), "label": raw.pop("label")}
        for title, value in raw.items():
            row[PAPER_COLUMNS[title]] = float(value)
        rows.append(row)
    return tuple(rows)


def paper_value(label: str, task: str, metric: str) -> float | None:
    """The published value for a row label and (task, metric), or None when the paper has none."""
    for row in paper_rows():
        if row["label"] == label and (task, metric) in row:
            return row[(task, metric)]
    return None


def paper_applies(model_identity: dict | None) -> bool:
    """True when records were made with the model the paper used (its hub id or the alias)."""
    return bool(model_identity) and model_identity.get("model") in PAPER_MODELS
