"""MNIST study (paper §3.1/§4.1): LeNet-300-100 ensembles, pruning, weight correlations, correlated init."""
