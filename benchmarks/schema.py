"""The record schema: what one cell's JSON record holds, as typed dicts (torch-free).

``validate_record`` checks a record read from disk or about to be written; a record is done only
when it validates and its status is ``ok``. docs/record.schema.json is generated from these types:

    python -m benchmarks.schema --write     # regenerate docs/record.schema.json (a test checks it is current)

Fields not named here are allowed (a suite kind may add what its reports need); the named ones are typed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from typing_extensions import NotRequired, TypedDict

from benchmarks import paths
from benchmarks.atomic import write_text_atomic

SCHEMA_FILE = paths.REPO_ROOT / "docs" / "record.schema.json"
KEY_PATTERN = r"^[0-9a-f]{20}$"  # config.KEY_LENGTH hex digits of the config's sha256

# A finite number (int too; NaN and Infinity are refused: a diverged cell is failed, not done), a true/false
# flag (only metrics named like FLAG_METRICS, e.g. "collapsed"), or null when a metric is undefined.
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
MetricValue = Union[FiniteFloat, bool, None]
FLAG_METRICS = ("collapsed", "constant_predictions")  # metric names (or their suffixes) that hold true/false
PerLayer = Union[dict[str, Optional[float]], list[Optional[float]]]  # by layer name, or in layer order


class Timings(TypedDict):
    """When the cell ran and for how long."""

    __pydantic_config__ = ConfigDict(extra="allow")
    seconds: float
    started: str  # ISO 8601, UTC


class CodeIdentity(TypedDict):
    """What computed a cell's part: a registered method's or task's version, source hash and plug-in origin."""

    __pydantic_config__ = ConfigDict(extra="allow")
    name: str
    version: Union[int, str]
    source: str
    plugin: NotRequired[str]  # plug-ins only: dist==version, the --plugin file name, or the module


class Provenance(TypedDict):
    """Where the numbers came from: code, libraries, device, data files (file or hub id -> sha256 or fingerprint)."""

    __pydantic_config__ = ConfigDict(extra="allow")
    git_sha: Optional[str]
    git_dirty: NotRequired[Optional[bool]]
    versions: dict[str, Optional[str]]
    device: str
    cpu: NotRequired[dict[str, Any]]  # model name, torch's CPU capability (AVX512, AVX2, ...), threads
    data: dict[str, Optional[str]]
    model_location_is_local: NotRequired[bool]
    num_processes: NotRequired[int]
    # The cell's method and task: {part: {name, version, source (hash), plugin (origin)}} (benchmarks/identity.py)
    code: NotRequired[dict[str, CodeIdentity]]
    plugins: NotRequired[list[str]]  # the run's --plugin arguments (files or modules), when any


class Sparsity(TypedDict, total=False):
    """Achieved sparsity of the prunable weights before and after fine-tuning (empty for kinds without one)."""

    __pydantic_config__ = ConfigDict(extra="allow")
    global_before: Optional[FiniteFloat]
    global_after: Optional[FiniteFloat]
    zeros_before: int
    zeros_after: int
    prunable_total: int
    per_layer_before: PerLayer
    per_layer_after: PerLayer


class Record(TypedDict):
    """One grid cell's result, written atomically to records/<key>.json."""

    __pydantic_config__ = ConfigDict(extra="allow")
    key: Annotated[str, Field(pattern=KEY_PATTERN)]
    suite: str
    label: str
    status: Literal["ok", "failed", "skipped"]
    error: Optional[str]  # null when ok; the reason when failed or skipped
    config: dict[str, Any]  # the canonical config whose sha256 is the key
    config_canonical: str
    metrics: dict[str, MetricValue]
    sparsity: Sparsity
    notes: dict[str, Any]
    artifacts: dict[str, Any]
    timings: Timings
    provenance: Provenance
    traceback: NotRequired[str]  # failed cells only
    predictions: NotRequired[Optional[str]]  # name of the per-example arrays file beside the record
    stale: NotRequired[str]  # why its code identity is not today's; set only by `run --keep-stale`


RECORD = TypeAdapter(Record)


def validate_record(record: Any) -> Record:
    """Return ``record`` if it is a valid record, else raise ValueError with a one-line reason."""
    try:
        RECORD.validate_python(record, strict=True)
    except ValidationError as exc:
        raise ValueError(_one_line(exc)) from None
    flags = [name for name, value in record["metrics"].items()
             if isinstance(value, bool) and not name.endswith(FLAG_METRICS)]
    if flags:
        raise ValueError(f"metrics.{flags[0]}: {record['metrics'][flags[0]]!r} is true/false, but only flag metrics "
                         f"(names ending in {', '.join(FLAG_METRICS)}) may be; a metric is a finite number or null")
    if (record["status"] == "ok") != (record["error"] is None):
        raise ValueError(f"status {record['status']!r} with error {record['error']!r}: "
                         f"an ok record has no error, any other has one")
    return record


_UNION_TAGS = {"float", "int", "bool", "str", "none"}  # pydantic names a union's members in an error's location


def _one_line(exc: ValidationError) -> str:
    """``field.path: what is wrong`` for the first wrong field; a union's alternatives as one message."""
    by_field: dict[str, list] = {}
    for error in exc.errors():
        parts = [str(p) for p in error["loc"]]
        tags = [p for p in parts if p in _UNION_TAGS]
        where = ".".join(p for p in parts if p not in _UNION_TAGS) or "record"
        by_field.setdefault(where, []).append((error["msg"], tags))
    where, errors = next(iter(by_field.items()))
    message = errors[0][0]
    if len(errors) > 1:  # a union: say which types were allowed
        allowed = [t for _, tags in errors for t in tags]
        message = f"{message} (allowed: {', '.join(allowed)})" if allowed else message
    more = f" (and {len(by_field) - 1} more field(s))" if len(by_field) > 1 else ""
    return f"{where}: {message}{more}"


def json_schema() -> dict:
    """The JSON Schema of a record, generated from ``Record``."""
    schema = RECORD.json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$comment": "generated by `python -m benchmarks.schema --write` from benchmarks/schema.py; do not edit",
            **schema}


def schema_text() -> str:
    """docs/record.schema.json as it should read."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the record JSON Schema, or write it to docs/record.schema.json with --write."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.schema", description=main.__doc__)
    parser.add_argument("--write", action="store_true", help=f"write {SCHEMA_FILE.relative_to(paths.REPO_ROOT)}")
    args = parser.parse_args(argv)
    if args.write:
        write_text_atomic(SCHEMA_FILE, schema_text())
        print(f"wrote {SCHEMA_FILE}", file=sys.stderr)
    else:
        sys.stdout.write(schema_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
