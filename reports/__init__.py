"""Reports: pure functions from a suite's records to Markdown or HTML.

Importing this package registers the built-in renderers (one per suite kind) in
``benchmarks.registry.RENDERERS``, which imports it on its first lookup; none of them imports torch.
"""

from reports import bert_correlations, mnist, prune_finetune  # noqa: F401 - they register themselves
from reports.render import render_suite

__all__ = ["render_suite"]
