"""docs/errors.md, the catalogue of bad inputs and faults with the message each gets, kept true by the tests.

Each case's test calls ``check(case_id, message, exit_status)``: the message (temporary paths and
record keys normalised) must equal the one the catalogue lists for that id; a ``…`` in a listed
message stands for text that comes from a library and varies by version. To regenerate the messages
after a deliberate change (descriptions and ``…`` patterns that still match are kept):

    log=$(mktemp) && PRUNEBENCH_ERRORS_LOG=$log python -m pytest tests/test_cli.py tests/test_bad_input.py \\
        tests/test_store.py tests/test_schema.py tests/test_preflight.py tests/test_report_grid.py \\
        tests/test_code_versions.py tests/test_reports_safe.py tests/test_migrate.py tests/test_claims.py \\
        tests/test_hub_probe.py -q -p no:cacheprovider
    python tests/errors_doc.py $log
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
LOG_ENV = "PRUNEBENCH_ERRORS_LOG"
BEGIN, END = "<!-- cases: begin -->", "<!-- cases: end -->"
ROW = re.compile(r"^\| `(?P<id>[^`]+)` \| (?P<case>.*?) \| (?P<exit>\d+) \| `` (?P<message>.*) `` \|$")
_TMP = re.compile(re.escape(tempfile.gettempdir()) + r"/pytest-of-[^/]+/pytest-\d+/[^/\s'\"]+")
_KEY = re.compile(r"\b[0-9a-f]{20}\b")


def normalize(message: str) -> str:
    """The message with run-specific parts replaced: temporary folders by <tmp>, record keys by <key>."""
    return _KEY.sub("<key>", _TMP.sub("<tmp>", message.strip()))


def documented() -> dict[str, dict]:
    """{case id: {case, exit, message}} from the catalogue's table."""
    out = {}
    lines = DOC.read_text().split(BEGIN, 1)[1].split(END, 1)[0].splitlines()
    for line in lines:
        match = ROW.match(line.strip())
        if match:
            out[match["id"]] = {"case": match["case"], "exit": int(match["exit"]),
                                "message": match["message"].replace("\\|", "|")}
    return out


def matches(pattern: str, message: str) -> bool:
    """True when ``message`` is the listed one (``…`` matching any text)."""
    regex = ".*".join(re.escape(part) for part in pattern.split("…"))
    return re.fullmatch(regex, message, flags=re.S) is not None


def check(case_id: str, message: str, exit_status: int) -> None:
    """Assert the catalogue lists ``case_id`` with this message and exit status (or log it for regeneration)."""
    text = normalize(message)
    log = os.environ.get(LOG_ENV)
    if log:
        with open(log, "a") as fh:
            fh.write(json.dumps({"id": case_id, "exit": exit_status, "message": text}) + "\n")
        return
    entry = documented().get(case_id)
    assert entry is not None, f"case {case_id!r} is missing from docs/errors.md (see tests/errors_doc.py)"
    assert entry["exit"] == exit_status, f"{case_id}: docs/errors.md says exit {entry['exit']}, got {exit_status}"
    assert matches(entry["message"], text), f"{case_id}: docs/errors.md lists\n  {entry['message']}\ngot\n  {text}"


def write(log: Path) -> int:
    """Rewrite the catalogue's table from a log of checked messages; keep descriptions and matching patterns."""
    old = documented() if BEGIN in DOC.read_text() else {}
    seen: dict[str, dict] = {}
    for line in Path(log).read_text().splitlines():
        item = json.loads(line)
        seen[item["id"]] = item
    rows = ["| case | what | exit | message |", "|---|---|---|---|"]
    for case_id in sorted(seen, key=lambda k: (k.split(":")[0], k)):
        item, before = seen[case_id], old.get(case_id, {})
        keep = before.get("message") and matches(before["message"], item["message"])
        message = (before["message"] if keep else item["message"]).replace("|", "\\|")
        rows.append(f"| `{case_id}` | {before.get('case', '')} | {item['exit']} | `` {message} `` |")
    head, rest = DOC.read_text().split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(f"{head}{BEGIN}\n" + "\n".join(rows) + f"\n{END}{tail}")
    print(f"wrote {len(seen)} cases to {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(write(Path(sys.argv[1])))
