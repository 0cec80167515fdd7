"""Errors that the CLI turns into a one-line message and exit status 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping


class UserError(Exception):
    """Bad input from the user: the message names the problem and a fix; the CLI exits 2."""


class DataMissing(Exception):
    """A data split is not available here; the cell is recorded as skipped with this reason."""


class RunAborted(Exception):
    """A fault that stops a run (e.g. the results disk is full): the CLI prints one line and exits 1."""


def did_you_mean(name: str, choices: Iterable[str], *, n: int = 1, cutoff: float = 0.6,
                 aliases: Mapping[str, str] | None = None) -> str:
    """"did you mean 'x'?" naming up to ``n`` choices close to ``name`` (difflib), or "" when none is close.

    ``aliases`` maps other spellings to a choice: a name close to an alias suggests the choice it stands for.
    Callers add their own fallback, e.g. ``hint or f"known: {...}"``.
    """
    aliases = dict(aliases or {})
    pool = [*choices, *aliases]
    close = difflib.get_close_matches(name, pool, n=n, cutoff=cutoff)
    named = list(dict.fromkeys(aliases.get(c, c) for c in close))  # an alias and its target name one choice
    return f"did you mean {', '.join(map(repr, named))}?" if named else ""
