"""The layout of a BERT weight-correlation result (Figs 3-5): its statistics, pairs, axes and node sets.

Torch-free and a leaf, so the report (reports/bert_correlations.py) reads records with these names
without importing the computation (benchmarks.bertcorr.statistics) or the suite kind.
"""

# The record artifact that holds one cell's result.
ARTIFACT = "bert_correlations"
STATS = ("nonzero_count", "mean_abs", "positive_count", "mean")
MEAN_STATS = ("mean_abs", "mean")
# Fig 5 axis -> the dimension a per-row / per-column statistic reduces over ([out, in] weights).
AXES = {"rows": -1, "columns": -2}
PAIRS = {"QK": ("query", "key"), "QV": ("query", "value"), "KV": ("key", "value")}
# Node set -> (matrix whose rows are the node's inputs, matrix whose columns are its outputs).
NODE_SETS = {"intermediate": ("intermediate", "output"), "attention_output": ("attention_output", "intermediate")}
