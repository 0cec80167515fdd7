"""prunebench: a benchmark suite and leaderboard for pruning research.

Entry points: ``python -m benchmarks run|report|list`` (see ``benchmarks.cli``).
"""

__version__ = "0.1.0"
