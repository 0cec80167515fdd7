"""Errors that the CLI turns into a one-line message and exit status 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: the message names the problem and a fix; the CLI exits 2."""


class DataMissing(Exception):
    """A data split is not available here; the cell is recorded as skipped with this reason."""


class RunAborted(Exception):
    """A fault that stops a run (e.g. the results disk is full): the CLI prints one line and exits 1."""
