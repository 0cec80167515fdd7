"""The BERT weight-correlation study (the paper's Figs 3-5), laid out like the MNIST study (benchmarks/mnist/).

- ``fields``: the layout of a result (statistics, pairs, axes, node sets); torch-free, so reports read it.
- ``statistics``: the correlations of a one-shot pruned BERT's weights (torch, float64 reductions).
- ``regen``: the command line: print a model's values, regenerate the CI reference, time bert-base.

The suite kind that runs it is ``benchmarks/kinds/bert_correlations.py``. This file imports nothing, so
importing ``benchmarks.bertcorr.fields`` loads no torch.
"""
