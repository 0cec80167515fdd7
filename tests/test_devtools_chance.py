"""benchmarks.devtools.chance: the dense-against-baseline table the published NOTE.md files carry."""

from __future__ import annotations

import pytest

from benchmarks.devtools import chance

FOLDER = "published/minilm-l6-bert-lowsparsity-probe"


def test_probe_board_flags_mrpc_and_clears_sst2() -> None:
    rows = {row[0]: row for row in chance.chance_rows(FOLDER)}
    assert rows["MRPC"][6] == "**no**" and rows["SST2"][6] == "yes"  # probe MRPC: dense not above the majority
    assert rows["MRPC"][4] == "majority class 0.684" and rows["MRPC"][5].startswith("[-")
    # MLM: the board's task-version-1 records are superseded (no dense value until rerun), and at version 2 the
    # dense model is below the most-frequent-token baseline: not ranked either way.
    (mlm,) = [row for name, row in rows.items() if name.startswith("MLM Accuracy")]
    assert mlm[6] == "**no**"
    assert all(row[7] == 0 for row in rows.values())  # no collapsed rows


def test_unknown_folder_is_a_one_line_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        chance.main(["published/no-such-run"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err
