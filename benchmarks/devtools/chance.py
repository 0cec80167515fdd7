"""Dense against its trivial baseline in a committed results folder: the table each published NOTE.md carries.

    python -m benchmarks.devtools.chance published/minilm-l6-bert-lowsparsity-zeroshot

One line per leaderboard column: dense's value and 95% bootstrap interval, the column's strongest trivial baseline
(majority class, always-positive F1, 0 for a correlation, most frequent token / unigram model for MLM) with its
interval, the 95% paired interval of dense minus baseline, whether the column is admissible for ranking (that
interval above 0) and how many rows collapsed (docs/statistics.md).
"""

from __future__ import annotations

import argparse
import sys

from tabulate import tabulate

from benchmarks.devtools.grids import COMMITTED, committed_suite
from benchmarks.paths import REPO_ROOT


def chance_rows(folder: str) -> list[list]:
    """[column, metric, dense, interval, baseline, gap interval, ranked, collapsed rows] per column of the board."""
    from reports.leaderboard import board_from_frame
    from reports.render import suite_frame

    suite = committed_suite(folder)
    board = board_from_frame(suite, suite_frame(suite, REPO_ROOT / folder))
    rows = [row for _, bucket in board.buckets for row in bucket]
    dense = next((row for row in rows if row.dense), None)
    if dense is None:  # e.g. bert-highsparsity (Fig 7) has no dense row: nothing to hold against chance
        return []
    out = []
    for column in board.columns:
        entry, base = dense.entries[column], board.column_baselines[column]
        collapsed = sum(row.entries[column].collapsed for row in rows)
        value = f"{entry.mean:.3f}" if entry.values else "-"
        interval = f"[{entry.ci[0]:.3f}, {entry.ci[1]:.3f}]" if entry.ci else "-"
        if base.name is None:
            baseline, gap, ranked = "-", "-", "yes (no baseline)"
        else:
            baseline = f"{base.name} {base.value:.3f}" if base.value is not None else f"{base.name}: none"
            gap = f"[{base.gap[0]:+.3f}, {base.gap[1]:+.3f}]" if base.gap else "-"
            ranked = "yes" if base.admissible else "**no**"
        out.append([column.title, entry.metric, value, interval, baseline, gap, ranked, collapsed])
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the dense-against-baseline table of each named committed folder."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.devtools.chance", description=main.__doc__)
    parser.add_argument("folders", nargs="+", choices=sorted(COMMITTED), metavar="FOLDER")
    args = parser.parse_args(argv)
    headers = ["column", "metric", "dense", "95% interval", "trivial baseline", "dense - baseline (95%)",
               "ranked", "collapsed rows"]
    for folder in args.folders:
        rows = chance_rows(folder)
        table = tabulate(rows, headers, tablefmt="github") if rows else "(no dense row in this suite)"
        print(f"{folder}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
