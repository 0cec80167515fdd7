"""Reports: pure functions from a results DataFrame to Markdown or HTML."""

from reports.render import render_suite

__all__ = ["render_suite"]
