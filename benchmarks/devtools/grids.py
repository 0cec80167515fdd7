"""The committed results folders, the report command of each, and their saved grids (benchmarks.grid).

    python -m benchmarks.devtools.grids           # rewrite every committed folder's grid (expands each suite)
    python -m benchmarks.devtools.grids --check   # exit 1 if a saved grid is not what its suite expands to

Rerun it after a change to what a suite kind expands to (e.g. a cell-key migration): reports read
the saved grids and never expand a suite themselves. ``tests/test_layers.py`` renders every folder
listed here in a fresh process and checks that no torch was imported.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks.paths import REPO_ROOT

# results folder (relative to the repository) -> the `report` arguments that name its suite (see each NOTE.md).
COMMITTED = {
    "docs/examples/smoke/results": ["--suite", "smoke"],
    "docs/examples/bert-correlations/results": ["--suite", "bert-correlations", "--model", "minilm-l6"],
    "published/minilm-l6-bert-lowsparsity-cpu": ["--suite", "bert-lowsparsity", "--model", "minilm-l6",
                                                 "--set", "scale=cpu"],
    "published/minilm-l6-bert-lowsparsity-cpuft": ["--suite", "bert-lowsparsity", "--model", "minilm-l6",
                                                   "--set", "scale=cpu-ft", "--set", "tasks=[sst2,stsb]",
                                                   "--set", "seeds=[0,1,2]"],
    "published/minilm-l6-bert-imp-cpuft": ["--suite", "bert-imp", "--model", "minilm-l6", "--set", "scale=cpu-ft",
                                           "--set", "tasks=[sst2,stsb]", "--set", "seeds=[0,1,2]"],
    "published/minilm-l6-bert-highsparsity-cpuft": ["--suite", "bert-highsparsity", "--model", "minilm-l6",
                                                    "--set", "scale=cpu-ft", "--set", "tasks=[sst2]",
                                                    "--set", "seeds=[0,1,2]"],
    "published/minilm-l6-bert-lowsparsity-zeroshot": ["--suite", "bert-lowsparsity", "--model", "minilm-l6",
                                                      "--set", "protocol=zeroshot", "--set", "scale=zeroshot",
                                                      "--set", "seeds=[0,1,2]"],
    "published/minilm-l6-bert-lowsparsity-probe": ["--suite", "bert-lowsparsity", "--model", "minilm-l6",
                                                   "--set", "protocol=probe", "--set", "scale=probe"],
    "published/minilm-l6-bert-highsparsity-zeroshot": ["--suite", "bert-highsparsity", "--model", "minilm-l6",
                                                       "--set", "protocol=zeroshot", "--set", "scale=zeroshot",
                                                       "--set", "seeds=[0,1,2]"],
    "published/minilm-l6-bert-oneshot-probe": ["--suite", "bert-oneshot", "--model", "minilm-l6",
                                               "--set", "protocol=probe", "--set", "scale=probe",
                                               "--set", "tasks=[sst2,stsb,mrpc]"],
    "published/minilm-l6-bert-oneshot-zeroshot": ["--suite", "bert-oneshot", "--model", "minilm-l6",
                                                  "--set", "protocol=zeroshot", "--set", "scale=zeroshot",
                                                  "--set", "tasks=[sst2,stsb,mrpc,mlm]"],
    "published/minilm-l6-bert-structured-zeroshot": ["--suite", "bert-structured", "--model", "minilm-l6",
                                                     "--set", "tasks=[stsb,sst2]"],
    "published/minilm-l6-bf16-bert-lowsparsity-full": ["--suite", "bert-lowsparsity", "--model", "minilm-l6-bf16",
                                                       "--set", "scale=full",
                                                       "--set", "tasks=[sst2,mrpc,stsb,qnli,mnli]"],
    "published/minilm-l6-bf16-bert-highsparsity-full": ["--suite", "bert-highsparsity", "--model", "minilm-l6-bf16",
                                                        "--set", "scale=full",
                                                        "--set", "tasks=[sst2,mrpc,stsb,qnli,mnli]"],
    "published/minilm-l6-bf16-bert-lowsparsity-full-cpu": ["--suite", "bert-lowsparsity",
                                                           "--model", "minilm-l6-bf16", "--set", "scale=full",
                                                           "--set", "tasks=[qnli]"],
    "published/minilm-l6-bf16-bert-lowsparsity-zeroshot": ["--suite", "bert-lowsparsity", "--model", "minilm-l6-bf16",
                                                           "--set", "protocol=zeroshot", "--set", "scale=zeroshot"],
    "published/minilm-l6-bf16-bert-highsparsity-zeroshot": ["--suite", "bert-highsparsity",
                                                            "--model", "minilm-l6-bf16",
                                                            "--set", "protocol=zeroshot", "--set", "scale=zeroshot"],
    "published/mnist-cpu/correlations": ["--suite", "mnist-correlations"],
    "published/mnist-cpu/init": ["--suite", "mnist-init"],
    "published/mnist-cpu/recipes": ["--suite", "mnist-recipes"],
    "published/mnist-h200/correlations": ["--suite", "mnist-correlations"],
    "published/mnist-h200/init": ["--suite", "mnist-init"],
}


def committed_suite(folder: str):
    """The suite (with overrides) whose records ``folder`` holds."""
    from benchmarks.cli import build_parser, resolve_suite

    return resolve_suite(build_parser().parse_args(["report", *COMMITTED[folder], "--results", folder]))


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with --check compare) the saved grid of every committed results folder."""
    from benchmarks.grid import read_grid
    from benchmarks.registry import KINDS
    from benchmarks.runner import expand, save_grid, task_columns

    parser = argparse.ArgumentParser(prog="python -m benchmarks.devtools.grids", description=main.__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    args = parser.parse_args(argv)
    stale = []
    for folder in COMMITTED:
        suite = committed_suite(folder)
        KINDS.get(suite.kind)().validate(suite)
        cells = expand(suite)
        if not args.check:
            save_grid(suite, REPO_ROOT / folder, cells)
            print(f"{folder}: grid of {len(cells)} cells saved")
            continue
        saved = read_grid(REPO_ROOT / folder, suite)
        made = ([(c.key, c.label, c.info) for c in cells], task_columns(cells))
        if saved is None or ([(c.key, c.label, c.info) for c in saved[0]], saved[1]) != made:
            stale.append(folder)
            print(f"{folder}: saved grid missing or stale; run python -m benchmarks.devtools.grids", file=sys.stderr)
    return int(bool(stale))


if __name__ == "__main__":
    sys.exit(main())
