"""The committed table of the built-in methods' code versions: {method: [version, source hash]}.

    python -m benchmarks.devtools.code_versions            # compare; exit 1 naming each method that differs
    python -m benchmarks.devtools.code_versions --write    # rewrite tests/reference/code_versions.json

A built-in's source hash (benchmarks/identity.py) changing at an unchanged version means a rerun would
give other numbers under the old cell key, so ``--write`` refuses it: bump the method's version
(``register_method(..., version=N + 1)``; its cells get new keys) and write again. Only for a change
that provably gives bit-identical results (a rename, a refactor: say how you checked in the commit)
``--same-results NAME`` records the new hash at the old version. tests/test_code_versions.py runs the
comparison for every built-in method.
"""

from __future__ import annotations

import argparse
import json
import sys

from benchmarks.atomic import write_text_atomic
from benchmarks.paths import REPO_ROOT

TABLE = REPO_ROOT / "tests" / "reference" / "code_versions.json"
COMMAND = "python -m benchmarks.devtools.code_versions --write"


def builtin_methods() -> list[str]:
    """The names of the built-in methods (the ``methods`` package's, not plug-ins)."""
    from benchmarks.identity import is_builtin
    from benchmarks.registry import METHODS

    return [name for name in METHODS.names() if is_builtin(METHODS, name)]


def current(name: str) -> list:
    """[version, source hash] of a built-in method as the code stands."""
    from benchmarks.identity import identity
    from benchmarks.registry import METHODS

    ident = identity(METHODS, name)
    return [ident["version"], ident["source"]]


def read_table() -> dict:
    """The committed table ({} when there is none yet)."""
    return json.loads(TABLE.read_text()) if TABLE.is_file() else {}


def problem(name: str, table: dict) -> str | None:
    """Why ``name``'s entry in ``table`` is not its code's, as one line naming the fix; None when it is."""
    now = current(name)
    then = table.get(name)
    if then is None:
        return f"method {name!r} is not in {TABLE.name}; run {COMMAND}"
    if then == now:
        return None
    if then[0] == now[0]:
        return (f"method {name!r} source changed ({then[1]} -> {now[1]}) at version {now[0]}: its old records would "
                f"be served as done; bump it (register_method(..., version={now[0] + 1})), then run {COMMAND}")
    return f"method {name!r} is at version {now[0]} but {TABLE.name} says {then[0]}; run {COMMAND}"


def refreshed(table: dict, same_results: tuple = ()) -> dict:
    """The table as the code gives it; ValueError naming each method whose source changed without a bump
    (unless named in ``same_results``)."""
    names = builtin_methods()
    unbumped = [n for n in names if n in table and table[n][0] == current(n)[0] and table[n][1] != current(n)[1]
                and n not in same_results]
    if unbumped:
        raise ValueError(f"source changed without a version bump: {', '.join(unbumped)}; bump each "
                         f"(register_method(..., version=N + 1)), or pass --same-results NAME for a change "
                         f"that gives bit-identical results")
    return {n: current(n) for n in names}


def main(argv: list[str] | None = None) -> int:
    """Compare the built-in methods with the committed table, or rewrite it with --write."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.devtools.code_versions", description=main.__doc__)
    parser.add_argument("--write", action="store_true", help=f"rewrite {TABLE.relative_to(REPO_ROOT)}")
    parser.add_argument("--same-results", action="append", default=[], metavar="METHOD",
                        help="record a changed source at the same version (only for bit-identical results)")
    args = parser.parse_args(argv)
    table = read_table()
    if args.write:
        try:
            new = refreshed(table, tuple(args.same_results))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        lines = [f"  {json.dumps(name)}: {json.dumps(new[name])}" for name in sorted(new)]
        write_text_atomic(TABLE, "{\n" + ",\n".join(lines) + "\n}\n")
        print(f"wrote {TABLE.relative_to(REPO_ROOT)}: {len(new)} methods")
        return 0
    problems = [p for p in (problem(n, table) for n in builtin_methods()) if p]
    problems += [f"method {n!r} is in {TABLE.name} but not registered; run {COMMAND}"
                 for n in table if n not in builtin_methods()]
    for line in problems:
        print(line, file=sys.stderr)
    return int(bool(problems))


if __name__ == "__main__":
    sys.exit(main())
