"""Command line: ``python -m benchmarks run|report|list``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import claims, interrupts, paths, store
from benchmarks.claims import LEFT_TO_OTHERS
from benchmarks.config import Suite, apply_overrides, builtin_suite_names, load_suite
from benchmarks.errors import RunAborted, UserError
from benchmarks.grid import read_grid
from benchmarks.registry import KINDS, METHODS, MODELS, PROTOCOLS, TASKS, UnknownName, protocol_spec

LISTABLE = ("methods", "tasks", "suites", "models", "kinds", "protocols")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit status 2."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        raise UserError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    parser = _Parser(prog="python -m benchmarks", description="prunebench: pruning benchmarks and leaderboards")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def plugin_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="FILE.py|MODULE",
                       help="import this plug-in first (a .py file or package.module whose import registers "
                            "methods); repeatable")

    def suite_args(p: argparse.ArgumentParser) -> None:
        plugin_arg(p)
        p.add_argument("--suite", help="built-in suite name (python -m benchmarks list suites)")
        p.add_argument("--suite-file", type=Path, help="a suite YAML file instead of a built-in name")
        p.add_argument("--model", help="hub id, local folder, or alias (python -m benchmarks list models)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a suite field, e.g. --set scale=cpu --set seeds=[0,1] --set recipe.lr=3e-5")
        p.add_argument("--results", type=Path, default=paths.DEFAULT_RESULTS, help="results folder (default results/)")

    run = sub.add_parser("run", help="run a suite; finished cells are skipped")
    suite_args(run)
    run.add_argument("--data-dir", type=Path, help=f"local data mirror (default ${paths.DATA_ENV} or ../shared/data)")
    run.add_argument("--shard", help="I/N: run only this worker's share of the grid (0-based)")
    run.add_argument("--jobs", type=int, default=1, metavar="N",
                     help="run the grid as N worker processes on this machine (each one --shard i/N), then report")
    run.add_argument("--stack", type=int, default=1, metavar="K",
                     help="fine-tune up to K cells of one task and seed as one stacked model (same records; fills a "
                          "GPU that one small model leaves idle; docs/stacking.md)")
    run.add_argument("--dry-run", action="store_true",
                     help="list the cells this command would run (and which worker and stack take each), checking "
                          "the input as a run does, computing and writing nothing")
    run.add_argument("--no-progress", action="store_true", help="no progress bars (they show on a terminal only)")
    run.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                     help="wait for cells that other runs on the same results folder compute, taking over any whose "
                          "claim goes stale (default); --no-wait leaves them and exits 3 while they have no record")
    # Set by a --jobs parent for each worker: where the worker reports how far its current cell is.
    run.add_argument("--progress-file", type=Path, help=argparse.SUPPRESS)
    run.add_argument("--no-report", action="store_true", help="do not print the leaderboard at the end")
    run.add_argument("--keep-stale", action="store_true",
                     help="keep records computed by other code (a changed method or plug-in) instead of rerunning "
                          "them; the board marks them stale")

    report = sub.add_parser("report", help="render a suite's leaderboard from its records (with only --results: "
                                           "the grid the run saved there)")
    suite_args(report)
    report.add_argument("--format", choices=("md", "html", "csv"),
                        help="md, html, or csv: the leaderboard as one tidy table, a row per method row and column "
                             "(prune-finetune suites; default: what --out's extension names, else md)")
    report.add_argument("--out", type=Path, help="write here (plots go beside it) instead of stdout; "
                                                 ".md, .html or .csv picks the format")
    report.add_argument("--table", choices=("board", "claims"), default="board",
                        help="with csv: the leaderboard (default), or the claims section, a row per tested "
                             "comparison with its effect, interval, p-values and verdicts")
    report.add_argument("--baseline", metavar="A,B",
                        help="methods each row is compared with at equal sparsity (default: global,wanda,sparsegpt)")
    report.add_argument("--compare", nargs="+", metavar="PROTOCOL=RESULTS",
                        help="rank correlations of the rows' scores between protocols instead of the leaderboard, "
                             "e.g. --compare zeroshot=published/A probe=published/B (docs/protocols.md)")
    report.add_argument("--same-cells", type=Path, metavar="OTHER",
                        help="pair --results' records with OTHER's by cell key and show how far each number moved "
                             "(the same grid on two machines or devices; docs/reproducibility.md); Markdown")
    report.add_argument("--pair-ignoring", action="append", default=[], metavar="FIELD",
                        help="with --same-cells: pair by config without this top-level field (repeatable), e.g. "
                             "model, to compare a grid on two models such as minilm-l6 and minilm-l6-bf16")

    lst = sub.add_parser("list", help="list registered methods, tasks, suites, models, suite kinds or protocols")
    lst.add_argument("what", choices=LISTABLE)
    plugin_arg(lst)
    return parser


def resolve_suite(args: argparse.Namespace) -> Suite:
    """The suite named on the command line, with --model and --set applied and validated."""
    if bool(args.suite) == bool(args.suite_file):
        raise UserError("name exactly one of --suite NAME or --suite-file PATH")
    suite = load_suite(args.suite, args.suite_file)
    if args.model is not None and not args.model.strip():
        raise UserError(f"--model {args.model!r} is empty; name a model alias, a folder or a hub id "
                        f"(python -m benchmarks list models)")
    overrides = list(args.overrides) + ([f"model={args.model}"] if args.model is not None else [])
    return apply_overrides(suite, overrides) if overrides else suite


def _data_dir(arg: Path | None) -> Path | None:
    data_dir = arg if arg is not None else paths.default_data_dir()
    if data_dir is not None and not Path(data_dir).is_dir():
        raise UserError(f"data folder {data_dir} does not exist; "
                        "pass --data-dir with a mirror laid out like ../shared/data")
    return data_dir


def _check_out(out: Path) -> None:
    """``report --out`` must name a file whose folder exists or can be made (checked before anything is written)."""
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; name a file in it, e.g. --out {out / 'report.md'}")
    blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise UserError(f"--out {out}: {blocker} is a file, not a folder; choose a path inside a folder")
    plots = paths.report_paths(out)["plots"]
    if plots.exists() and not plots.is_dir():
        raise UserError(f"--out {out}: {plots} (where its plots go) is a file; move it away or choose another --out")
    try:
        store.check_writable(out.parent)
    except OSError as exc:
        raise UserError(f"--out {out}: its folder is not writable ({exc.strerror or exc}); "
                        "choose another path") from None


def _results_dir(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise UserError(f"--results {path} is a file; pass a folder")
    return path


def _quiet_libraries() -> None:
    """Keep stderr for our progress bar and summary: no per-cell load reports or download bars."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _worker_argv(argv: list[str], index: int, jobs: int, progress_file: Path | None = None) -> list[str]:
    """The ``run`` command line of worker ``index``: the user's own, minus --jobs, plus its shard (and the
    file where it reports its progress to the parent's combined bar; its own bars stay off)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--jobs":
            skip = True
        elif not arg.startswith("--jobs="):
            out.append(arg)
    channel = ["--progress-file", str(progress_file)] if progress_file is not None else []
    return [sys.executable, "-m", "benchmarks", *out, "--shard", f"{index}/{jobs}", "--no-report", "--no-progress",
            *channel]


def _run_jobs(args: argparse.Namespace, suite: Suite, data_dir: Path | None, results: Path) -> int:
    """Run ``args.jobs`` shard workers in parallel; exit status 0, 1, 2 or 3 as for one process (combined_status)."""
    import os
    import subprocess
    import tempfile

    from benchmarks import preflight as preflight_checks
    from benchmarks import progress
    from benchmarks.runner import count_done, preflight

    _refuse_shard_with_jobs(args.shard)
    cells = preflight(suite, data_dir, results_dir=results)  # bad input: one line and exit 2 here, not per worker
    cores = preflight_checks.usable_cores()
    jobs, why, each = _plan_workers(args, suite, len(cells) - count_done(cells, results))
    if why:
        memory = f" (each needs about {each / 2**30:.1f} GiB)" if each else ""
        print(f"note: --jobs {args.jobs} lowered to {jobs} worker(s){memory}: {why}", file=sys.stderr)
    env = dict(os.environ)
    # One BLAS pool per worker, sized to share the cores, unless the user chose otherwise.
    env.setdefault("OMP_NUM_THREADS", str(max(1, cores // jobs)))
    print(f"{suite.name}: {jobs} workers (--shard i/{jobs}), OMP_NUM_THREADS={env['OMP_NUM_THREADS']}",
          file=sys.stderr)
    show = not args.no_progress and progress.stderr_is_terminal()
    with tempfile.TemporaryDirectory(prefix="prunebench-progress-") as channel_dir:
        channels = [Path(channel_dir) / f"worker-{i}.json" for i in range(jobs)]
        env[interrupts.PARENT_ENV] = str(os.getpid())  # each worker dies with this process (even on SIGKILL)
        workers = [subprocess.Popen(_worker_argv(args.argv, i, jobs, channels[i] if show else None), env=env)
                   for i in range(jobs)]
        try:
            codes = progress.follow_workers(workers, [c.key for c in cells], results, channels, show, suite.name)
        except interrupts.Interrupted as exc:  # pass SIGTERM / SIGINT on: the workers release their claims
            interrupts.stop_workers(workers, exc.signum)
            raise
    done = count_done(cells, results, args.keep_stale)
    print(f"{suite.name}: {len(cells)} cells, {done} with an ok record; worker exit statuses {codes}", file=sys.stderr)
    return combined_status(codes)


def _refuse_shard_with_jobs(shard) -> None:
    """--jobs starts its own shards: a --shard beside it is bad input."""
    if shard:
        raise UserError("--jobs starts its own shards; drop --shard (or drop --jobs and start the shards yourself)")


def _plan_workers(args: argparse.Namespace, suite: Suite, left: int) -> tuple[int, str | None, int | None]:
    """(workers, why fewer than --jobs, bytes each needs) for ``left`` cells to run, after the memory checks of
    --jobs and --stack (bad input beyond this machine's memory)."""
    from benchmarks import preflight as preflight_checks
    from benchmarks.models import resolve_model

    model = resolve_model(suite.model, suite.model_revision)
    jobs, why = preflight_checks.plan_workers(args.jobs, preflight_checks.usable_cores(), left)
    each = preflight_checks.worker_memory(preflight_checks.model_shape(model))  # from the model's config only
    preflight_checks.check_memory(jobs, each, preflight_checks.total_memory())
    _check_stack_memory(args.stack, jobs, model)
    return jobs, why, each


def _check_stack_memory(stack: int, jobs: int, model) -> None:
    """A ``--stack`` on a CPU keeps its stacked models in this machine's memory: bad input (exit 2) beyond it.
    (On a GPU they live on the device, which the check cannot see.)"""
    if stack <= 1:
        return
    import torch

    from benchmarks import preflight as preflight_checks

    if torch.cuda.is_available():
        return
    each = preflight_checks.worker_memory(preflight_checks.model_shape(model), stack)
    preflight_checks.check_memory(jobs, each, preflight_checks.total_memory(), stack)


def combined_status(codes: list[int]) -> int:
    """One exit status for several workers: 2 if one saw bad input, 1 if a cell failed or a worker died
    (a signal gives a negative code, an interrupted worker 130 / 143), 3 if one left cells to other runs
    (--no-wait), else 0."""
    if 2 in codes:
        return 2
    if any(code not in (0, LEFT_TO_OTHERS) for code in codes):
        return 1
    return LEFT_TO_OTHERS if LEFT_TO_OTHERS in codes else 0


def cmd_run(args: argparse.Namespace) -> int:
    suite = resolve_suite(args)
    from benchmarks.models import HUB_MODEL_KINDS, check_hub_model, resolve_model  # not for report/list

    if suite.kind in HUB_MODEL_KINDS:  # before the kinds (and torch) are imported: an offline node hears in seconds
        check_hub_model(resolve_model(suite.model, suite.model_revision))
    from benchmarks.runner import check_data_present, parse_shard, run_suite

    KINDS.get(suite.kind)().validate(suite)
    if args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: give a number of worker processes >= 1")
    if args.stack < 1:
        raise UserError(f"--stack {args.stack}: give the number of cells to train at once, >= 1 (1: one at a time)")
    shard = parse_shard(args.shard)
    claims.check_settings()
    data_dir = _data_dir(args.data_dir)
    if args.data_dir is not None:  # a folder the user named must hold some of the suite's data
        check_data_present(suite, data_dir)
    results = _results_dir(args.results)
    if args.jobs == 1:  # several workers are checked with their number (_plan_workers)
        _check_stack_memory(args.stack, 1, resolve_model(suite.model, suite.model_revision))
    if args.dry_run:
        return _dry_run(args, suite, data_dir, results, shard)
    if args.jobs > 1:
        code = _run_jobs(args, suite, data_dir, results)
        if not args.no_report and results.is_dir():
            from reports import render_suite

            print(render_suite(suite, results, "md"))
        return code
    _quiet_libraries()
    summary = run_suite(suite, results, data_dir, shard, progress=not args.no_progress,
                        progress_file=args.progress_file, keep_stale=args.keep_stale, wait=args.wait,
                        stack=args.stack)
    by_others = f", {summary.by_others} done by other runs" if summary.by_others else ""
    print(f"{suite.name}: {summary.total} cells, {summary.skipped_done} already done{by_others}, {summary.ran} run "
          f"({summary.ok} ok, {len(summary.data_skipped)} skipped for missing data, {len(summary.failed)} failed)",
          file=sys.stderr)
    for label, error in summary.failed:
        print(f"  failed: {label}: {error}", file=sys.stderr)
    if not args.no_report:
        from reports import render_suite

        print(render_suite(suite, results, "md"))
    return summary.exit_code


def _dry_run(args: argparse.Namespace, suite: Suite, data_dir: Path | None, results: Path,
             shard: tuple[int, int] | None) -> int:
    """``run --dry-run``: a table of the cells and what the run would do with each, then a summary line; exit 0."""
    from collections import Counter

    from tabulate import tabulate

    from benchmarks.runner import PLAN_DONE, PLAN_KEPT, plan_cells

    if args.jobs > 1:
        _refuse_shard_with_jobs(shard)
    planned = plan_cells(suite, results, data_dir, shard, args.keep_stale)
    todo = [cell for cell, state in planned if state not in (PLAN_DONE, PLAN_KEPT)]
    # the same workers and memory checks as the run (bad input here too)
    jobs, why, _ = _plan_workers(args, suite, len(todo)) if args.jobs > 1 else (1, None, None)
    worker = {cell.key: i % jobs for i, (cell, _) in enumerate(planned)}  # --jobs N runs --shard i/N per worker
    stacks = _dry_run_stacks(todo, worker, jobs, args.stack)
    headers = ["#", *(["worker"] if jobs > 1 else []), *(["stack (cells)"] if args.stack > 1 else []),
               "cell", "state", "key"]
    rows = [[i, *([worker[c.key]] if jobs > 1 else []), *([stacks.get(c.key, "")] if args.stack > 1 else []),
             c.label, state, c.key] for i, (c, state) in enumerate(planned)]
    print(tabulate(rows, headers=headers, tablefmt="simple"))
    detail = ", ".join(f"{n} {state}" for state, n in Counter(state for _, state in planned).items())
    lowered = f" (--jobs {args.jobs} lowered to {jobs}: {why})" if args.jobs > 1 and jobs != args.jobs else ""
    on = f" on {jobs} workers" if jobs > 1 else ""
    print(f"{suite.name}: {len(planned)} cells ({detail}); {len(todo)} would run{on}{lowered}; nothing was run "
          f"or written")
    return 0


def _dry_run_stacks(todo: list, worker: dict, jobs: int, size: int) -> dict[str, str]:
    """{cell key: "stack number (its cells)"} as ``run --stack size`` would group each worker's cells."""
    from benchmarks.stacking import plan_groups

    if size <= 1:
        return {}
    out, number = {}, 0
    for w in range(jobs):  # each worker stacks the cells of its own shard
        for group in plan_groups([c for c in todo if worker[c.key] == w], size):
            number += 1
            out.update({c.key: f"{number} ({len(group)})" if len(group) > 1 else "alone" for c in group})
    return out


def _warn_corrupt(results: Path) -> None:
    """Stderr lines naming unreadable record files (left out of the report) and ok records whose arrays do not load."""
    from benchmarks.predictions import problem
    from benchmarks.store import load_records

    loaded = load_records(results)
    corrupt = loaded.corrupt
    if corrupt:
        print(f"warning: {len(corrupt)} unreadable record(s) left out: {', '.join(sorted(corrupt))} "
              f"(rerun the suite to redo those cells)", file=sys.stderr)
    arrays = {f"{key}.json": why for key, record in sorted(loaded.records.items())
              if record["status"] == store.OK and (why := problem(results, record))}
    if arrays:  # the cells are shown, without an interval
        print(f"warning: {len(arrays)} ok record(s) without usable per-example arrays, shown without an interval: "
              f"{', '.join(f'{name} ({why})' for name, why in arrays.items())} (rerun the suite to redo those "
              f"cells)", file=sys.stderr)


def _grid(suite: Suite, results: Path) -> tuple | None:
    """None when ``results`` holds the suite's saved grid (the report then imports no suite kind, nor torch);
    else expand the suite through its kind once and save the grid there for next time (if writable)."""
    if read_grid(results, suite) is not None:
        return None
    from benchmarks.grid import write_grid
    from benchmarks.runner import expand, task_columns

    KINDS.get(suite.kind)().validate(suite)
    cells = expand(suite)
    columns = task_columns(cells)
    try:
        write_grid(results, suite, cells, columns)
    except OSError:  # a read-only results folder still gets its report
        pass
    return cells, columns


def _names_suite(args: argparse.Namespace) -> bool:
    return bool(args.suite or args.suite_file or args.model is not None or args.overrides)


def report_suite(args: argparse.Namespace, results: Path) -> Suite:
    """The suite ``report`` renders: the one the run saved in ``results`` when no suite flag is given (or
    ``--suite NAME`` alone picks one of several); else the suite the flags name, which the folder must hold
    unless it holds no saved grid at all (records written before grids existed)."""
    from benchmarks.grid import saved_grids, saved_suite, suite_hash

    saved = saved_grids(results)
    listing = "; ".join(g.describe() for g in saved)
    if not _names_suite(args):
        if not saved:
            raise UserError(f"--results {results} holds no saved grid (grids/*.json); name the suite as the run "
                            f"did: --suite NAME with the run's --model/--set flags")
        if len(saved) > 1:
            raise UserError(f"--results {results} holds {len(saved)} grids: {listing}; pick one with --suite NAME "
                            f"(add the run's --model/--set flags when two share a name)")
        return saved_suite(saved[0])
    only_name = args.suite and not args.suite_file and args.model is None and not args.overrides
    same_name = [g for g in saved if g.name == args.suite] if only_name else []
    if len(same_name) == 1:
        return saved_suite(same_name[0])  # --suite NAME picks the run's grid of that name, whatever its flags
    suite = resolve_suite(args)
    if not saved or any((g.name, g.hash) == (suite.name, suite_hash(suite)) for g in saved):
        return suite
    if same_name:
        raise UserError(f"--results {results} holds {len(same_name)} grids of suite {suite.name!r}: "
                        f"{'; '.join(g.describe() for g in same_name)}; add the run's --model/--set flags to pick one")
    raise UserError(f"--results {results} holds no grid for suite {suite.name!r} as these flags give it (it holds: "
                    f"{listing}); drop the suite flags to render its grid, or repeat the run's own flags")


def cmd_report(args: argparse.Namespace) -> int:
    from reports import render_suite
    from reports.render import report_format

    if args.pair_ignoring and args.same_cells is None:
        raise UserError("--pair-ignoring only applies to --same-cells OTHER; add it or drop --pair-ignoring")
    if args.table != "board" and (args.compare or args.same_cells is not None):
        raise UserError(f"--table {args.table} applies to a suite's report, not to --compare or --same-cells; "
                        "drop --table")
    if args.compare:
        return _compare(resolve_suite(args), args)
    if args.same_cells is not None:
        return _same_cells(args)
    fmt = _table_format(report_format(args.format, args.out), args.table)
    results = _results_dir(args.results)
    if not results.is_dir():
        raise UserError(f"--results {results} does not exist; run the suite first or point at its results folder")
    suite = report_suite(args, results)
    if args.out is not None:
        _check_out(args.out)
    _warn_corrupt(results)
    baselines = [b.strip() for b in (args.baseline or "").split(",") if b.strip()]
    text = render_suite(suite, results, fmt, out=args.out, grid=_grid(suite, results), baselines=baselines)
    if args.out is None:
        print(text, end="" if fmt.endswith("csv") else "\n")  # CSV text ends its last line itself
    else:
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _table_format(fmt: str, table: str) -> str:
    """The renderer's format: ``claims-csv`` for ``--table claims`` (a CSV table only)."""
    if table == "board":
        return fmt
    if fmt != "csv":
        raise UserError(f"--table {table} is a CSV table; add --format csv or name --out with .csv "
                        "(the Markdown and HTML reports hold the claims section already)")
    return "claims-csv"


def _compare(suite: Suite, args: argparse.Namespace) -> int:
    """``report --compare``: the protocol comparison of the suite's tasks (reports/protocol_compare.py); Markdown."""
    from reports import protocol_compare as compare

    if args.format not in (None, "md"):
        raise UserError(f"--compare writes Markdown only; drop --format {args.format}")
    pairs = compare.parse_compare(args.compare)
    if args.out is not None:
        _check_out(args.out)
    text = compare.render(suite.name, pairs, compare.compare(pairs, list(suite.tasks)), args.out)
    _write_or_print(text, args.out)
    return 0


def _same_cells(args: argparse.Namespace) -> int:
    """``report --same-cells OTHER``: the cells of --results and OTHER paired by key (reports/device_compare.py)."""
    from reports import device_compare

    if args.format not in (None, "md"):
        raise UserError(f"--same-cells writes Markdown only; drop --format {args.format}")
    a = device_compare.check_folder(_results_dir(args.results), "--results")
    b = device_compare.check_folder(args.same_cells, "--same-cells")
    if args.out is not None:
        _check_out(args.out)
    ignoring = tuple(args.pair_ignoring)
    text = device_compare.render(device_compare.compare_folders(a, b, ignoring), a, b, ignoring)
    _write_or_print(text, args.out)
    return 0


def _write_or_print(text: str, out: Path | None) -> None:
    """Print ``text``, or write it atomically to ``out`` and say so on stderr."""
    if out is None:
        print(text)
        return
    from benchmarks.store import write_bytes_atomic

    write_bytes_atomic(out, text.encode())
    print(f"wrote {out}", file=sys.stderr)


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "suites":
        for name in builtin_suite_names():
            print(f"{name:24s} {load_suite(name).description}")
        return 0
    registry = {"methods": METHODS, "tasks": TASKS, "models": MODELS, "kinds": KINDS, "protocols": PROTOCOLS}[args.what]
    for name in registry.names():
        if registry is PROTOCOLS:  # a protocol's spec carries its description and version
            spec = protocol_spec(name)
            print(f"{name:24s} {spec.description} (version {spec.version})")
            continue
        doc = (registry.get(name).__doc__ or "").strip().splitlines()
        print(f"{name:24s} {doc[0] if doc else ''}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 some cell failed, 2 bad input, 3 cells left to other
    runs, 130 / 143 interrupted by SIGINT / SIGTERM)."""
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = build_parser().parse_args(argv)
        args.argv = argv  # --jobs hands the same command line to its workers
        from benchmarks.plugins import load_plugins

        load_plugins(args.plugins)  # always: a second command in one process must not inherit the first's
        if args.command == "run":
            return _run_interruptible(args)
        return {"report": cmd_report, "list": cmd_list}[args.command](args)
    except (UserError, UnknownName) as exc:  # both are bad input
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RunAborted as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run_interruptible(args: argparse.Namespace) -> int:
    """``run`` with SIGTERM / SIGINT handled: this run's claims released, one line, exit 143 / 130.

    A ``--jobs`` worker dies with its parent and leaves the line to it."""
    import os

    parent = os.environ.get(interrupts.PARENT_ENV)
    worker = parent is not None and parent.isdigit()
    if worker:
        interrupts.die_with_parent(int(parent))
    try:
        with interrupts.interruptible():
            return cmd_run(args)
    except interrupts.Interrupted as exc:
        claims.release_all()  # the runner released the running cell's claim already; this catches any other
        if not worker:
            print(f"error: interrupted by {exc.name}; this run's claims are released and its finished cells "
                  f"kept: rerun the same command to resume", file=sys.stderr)
        return exc.exit_status

