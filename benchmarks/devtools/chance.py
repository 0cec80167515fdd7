"""Dense against chance in a committed results folder: the table each published NOTE.md carries.

    python -m benchmarks.devtools.chance published/minilm-l6-bert-lowsparsity-zeroshot

One line per leaderboard column: dense's value and 95% bootstrap interval, the chance level (majority share of the
evaluated labels, or 0 for a correlation), whether dense clears it, and how many rows collapsed (docs/statistics.md).
A column whose dense interval does not clear chance cannot rank pruning methods.
"""

from __future__ import annotations

import argparse
import sys

from tabulate import tabulate

from benchmarks.devtools.grids import COMMITTED, committed_suite
from benchmarks.paths import REPO_ROOT


def chance_rows(folder: str) -> list[list]:
    """[column, metric, dense, interval, chance, above, collapsed rows] for each column of the folder's board."""
    from reports.leaderboard import board_from_frame, dense_above_chance
    from reports.render import suite_frame

    suite = committed_suite(folder)
    board = board_from_frame(suite, suite_frame(suite, REPO_ROOT / folder))
    rows = [row for _, bucket in board.buckets for row in bucket]
    dense = next((row for row in rows if row.dense), None)
    if dense is None:  # e.g. bert-highsparsity (Fig 7) has no dense row: nothing to hold against chance
        return []
    out = []
    for column in board.columns:
        entry = dense.entries[column]
        verdict = dense_above_chance(entry)
        collapsed = sum(row.entries[column].collapsed for row in rows)
        value = f"{entry.values[0]:.3f}" if entry.values else "-"
        interval = f"[{entry.ci[0]:.3f}, {entry.ci[1]:.3f}]" if entry.ci else "-"
        if verdict is None:
            chance, above = "-", "no chance level"
        else:
            chance, above = f"{verdict[1]:.3f}", "yes" if verdict[0] else "**no**"
        out.append([column.title, entry.metric, value, interval, chance, above, collapsed])
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the dense-against-chance table of each named committed folder."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.devtools.chance", description=main.__doc__)
    parser.add_argument("folders", nargs="+", choices=sorted(COMMITTED), metavar="FOLDER")
    args = parser.parse_args(argv)
    headers = ["column", "metric", "dense", "95% interval", "chance", "dense above chance", "collapsed rows"]
    for folder in args.folders:
        rows = chance_rows(folder)
        table = tabulate(rows, headers, tablefmt="github") if rows else "(no dense row in this suite)"
        print(f"{folder}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
