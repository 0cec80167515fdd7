"""CI regression reference for the MNIST correlations: compute, compare, regenerate.

Regenerate ``tests/reference/mnist_ci.json`` (after a deliberate change to training or the statistics):

    python -m benchmarks.mnist.regen            # add --data-dir DIR when ../shared/data is not beside the repo
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

from benchmarks import paths, store
from benchmarks.config import load_suite

REFERENCE = paths.REPO_ROOT / "tests" / "reference" / "mnist_ci.json"
SUITE = "mnist-ci"
COMMAND = "python -m benchmarks.mnist.regen"
# Absolute tolerances. Correlations lie in [-1, 1]; the run is bit-identical on one machine (1 thread),
# and 2e-3 leaves room for float32 differences between CPUs/BLAS kernels (not measured across machines)
# while still catching a real change (a different pair convention or pruning rule moves values by >1e-2).
TOLERANCES = {"t1": 2e-3, "t2": 2e-3, "accuracy": 2e-3}


def ci_values(data_dir: Path | None) -> dict:
    """Run the mnist-ci suite into a temporary store and return its Table 1, Table 2 and accuracy values."""
    from benchmarks.runner import run_suite

    suite = load_suite(SUITE)
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_suite(suite, Path(tmp), data_dir, progress=False, accelerator=_NoAccelerator())
        records = store.load_records(Path(tmp)).records
    if summary.ok != summary.total:
        reason = next((r.get("error") for r in records.values() if r["status"] != store.OK), "unknown")
        raise RuntimeError(f"mnist-ci did not run cleanly: {reason}")
    (record,) = records.values()
    return values_from_metrics(record["metrics"])


def values_from_metrics(metrics: dict) -> dict:
    """The compared values of a record's metrics: Table 1 (t1.*), Table 2 (t2.*) and test accuracy."""
    keep = {k: v for k, v in metrics.items() if k.startswith(("t1.", "t2.")) or k.startswith("accuracy")}
    return dict(sorted(keep.items()))


def _tolerance(key: str, reference: dict) -> float:
    tol = reference.get("tolerances", TOLERANCES)
    return tol["accuracy"] if key.startswith("accuracy") else tol[key.split(".", 1)[0]]


def compare(values: dict, reference: dict) -> list[str]:
    """Mismatches between computed ``values`` and the reference, one line each (empty: all within tolerance)."""
    problems = []
    want = reference["values"]
    for key in sorted(set(want) | set(values)):
        if key not in values or key not in want:
            problems.append(f"{key}: present in only one of computed/reference")
            continue
        a, b = values[key], want[key]
        if isinstance(b, int) and not isinstance(b, bool) and key.endswith(("dead_nodes", "nodes")):
            if a != b:
                problems.append(f"{key}: computed {a} != reference {b}")
            continue
        both_nan = a is not None and b is not None and math.isnan(a) and math.isnan(b)
        if not both_nan and (a is None or b is None or not abs(a - b) <= _tolerance(key, reference)):
            problems.append(f"{key}: computed {a!r} vs reference {b!r} (tolerance {_tolerance(key, reference)})")
    return problems


class _NoAccelerator:
    """Single-process stand-in for accelerate.Accelerator (the runner only asks these two things)."""

    is_main_process = True
    num_processes = 1

    def wait_for_everyone(self) -> None:
        """Nothing to wait for in one process."""


def main(argv: list[str] | None = None) -> int:
    """Recompute the mnist-ci values and write them as the new reference."""
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="MNIST mirror (default ../shared/data)")
    parser.add_argument("--out", type=Path, default=REFERENCE)
    args = parser.parse_args(argv)
    values = ci_values(args.data_dir or paths.default_data_dir())
    payload = {"suite": SUITE, "regenerate_with": COMMAND, "tolerances": TOLERANCES, "values": values}
    store.write_json_atomic(args.out, payload)
    print(f"wrote {args.out} ({len(values)} values)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
