"""report --same-cells (reports/device_compare.py): the same cells in two folders, paired by key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks import predictions as P
from benchmarks.cli import main
from reports import device_compare

ROOT = Path(__file__).resolve().parents[1]
GPU_LOW = ROOT / "published" / "minilm-l6-bf16-bert-lowsparsity-full"
needs_board = pytest.mark.skipif(not (GPU_LOW / "records").is_dir(), reason="needs the published GPU full board")


def _dense(task: str) -> Path:
    for path in sorted((GPU_LOW / "records").glob("*.json")):
        config = json.loads(path.read_text())["config"]
        if config["task"] == task and config["method"] == "dense":
            return path
    raise AssertionError(f"no dense {task} record in {GPU_LOW}")


def _copy(records: list[Path], folder: Path) -> Path:
    (folder / "records").mkdir(parents=True)
    for path in records:
        shutil.copy(path, folder / "records")
        shutil.copy(path.with_suffix(".npz"), folder / "records")
    return folder


def _edit(folder: Path, record: Path, change) -> dict:
    npz = folder / "records" / record.with_suffix(".npz").name
    arrays = P.read_arrays(npz)
    change(arrays)
    npz.write_bytes(P.to_bytes(arrays))
    return arrays


@needs_board
def test_moved_predictions_give_the_move_its_interval_and_the_agreement(tmp_path):
    mrpc, stsb = _dense("mrpc"), _dense("stsb")
    a = _copy([mrpc, stsb], tmp_path / "a")
    b = _copy([mrpc, stsb], tmp_path / "b")
    before = P.read_arrays(a / "records" / mrpc.with_suffix(".npz").name)

    def flip_ten(arrays):
        arrays[P.PRED] = arrays[P.PRED].copy()
        arrays[P.PRED][:10] = 1 - arrays[P.PRED][:10]

    after = _edit(b, mrpc, flip_ten)
    noise = np.random.default_rng(0).normal(0, 0.5, size=len(P.read_arrays(stsb.with_suffix(".npz"))[P.PRED]))
    moved = _edit(b, stsb, lambda arrays: arrays.__setitem__(P.PRED, arrays[P.PRED] + noise))
    items = {it["task"]: it for it in device_compare.compare_folders(a, b)}
    assert set(items) == {"mrpc", "stsb"}
    accuracy = lambda arr: float(np.mean(arr[P.PRED] == arr[P.LABEL]))  # noqa: E731
    assert items["mrpc"]["diff"] == pytest.approx(accuracy(after) - accuracy(before))
    assert items["mrpc"]["agreement"] == pytest.approx(1 - 10 / len(before[P.PRED]))
    lo, hi = items["mrpc"]["bounds"]
    assert lo <= items["mrpc"]["diff"] <= hi and lo < hi
    original = P.read_arrays(stsb.with_suffix(".npz"))[P.PRED]
    assert items["stsb"]["agreement"] == pytest.approx(np.corrcoef(original, moved[P.PRED])[0, 1])
    assert items["stsb"]["diff"] < 0  # noise on the scores lowers Pearson's r with the gold scores


@needs_board
def test_identical_folders_move_nothing_and_disjoint_ones_pair_nothing(tmp_path, capsys):
    a = _copy([_dense("mrpc")], tmp_path / "a")
    b = _copy([_dense("qnli")], tmp_path / "b")
    assert device_compare.compare_folders(a, b) == []
    assert "No cell is finished in both folders." in device_compare.render([], a, b)
    out = tmp_path / "same.md"
    assert main(["report", "--results", str(a), "--same-cells", str(a), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| mrpc   | full-base | 0      | accuracy |" in text
    assert r"+0.000 \[+0.000, +0.000\]" in text  # Markdown escapes the brackets


def _as_model(folder: Path, model: str) -> None:
    """Rewrite every record of ``folder`` as if another model had made it (its config, and so its key, change)."""
    from benchmarks.config import canonical_json, config_key

    for path in list((folder / "records").glob("*.json")):
        record = json.loads(path.read_text())
        record["config"]["model"] = {"model": model, "weights_sha256": "0" * 64}
        record["config_canonical"] = canonical_json(record["config"])
        record["key"] = config_key(record["config"])
        record["predictions"] = record["key"] + ".npz"
        path.with_suffix(".npz").rename(folder / "records" / record["predictions"])
        path.unlink()
        (folder / "records" / f"{record['key']}.json").write_text(json.dumps(record))


@needs_board
def test_pairing_ignoring_the_model_pairs_the_same_grid_on_two_models(tmp_path):
    a = _copy([_dense("mrpc"), _dense("stsb")], tmp_path / "a")
    b = _copy([_dense("mrpc"), _dense("stsb")], tmp_path / "b")
    _as_model(b, "minilm-l6")
    assert device_compare.compare_folders(a, b) == []  # by key: another model is another cell
    items = device_compare.compare_folders(a, b, ("model",))
    assert [it["task"] for it in items] == ["mrpc", "stsb"] and all(it["diff"] == 0 for it in items)
    assert "ignoring `model`" in device_compare.render(items, a, b, ("model",))


@needs_board
def test_pairing_ignoring_a_field_refuses_unknown_fields_and_collisions(tmp_path):
    a = _copy([_dense("mrpc"), _dense("stsb")], tmp_path / "a")
    with pytest.raises(device_compare.UserError, match="no record's config has that field; name one of"):
        device_compare.compare_folders(a, a, ("modle",))
    with pytest.raises(device_compare.UserError, match="then have the same config; ignore fewer fields"):
        device_compare.compare_folders(a, a, ("task", "label", "recipe", "task_version"))


def test_a_metric_without_per_example_classes_shows_no_agreement_and_warns_nothing():
    import warnings

    items = [{"task": "mlm", "label": "full-0.1", "seed": 0, "metric": "mlm_accuracy", "a": 0.05, "b": 0.06,
              "diff": 0.01, "bounds": (0.0, 0.02), "agreement": float("nan"), "regression": False,
              "devices": ("cpu", "cpu")},
             {"task": "mrpc", "label": "full-0.1", "seed": 0, "metric": "accuracy", "a": 0.7, "b": 0.7,
              "diff": 0.0, "bounds": (-0.01, 0.01), "agreement": 0.99, "regression": False,
              "devices": ("cpu", "cpu")}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = device_compare.summary(items)
        text = device_compare.render(items, Path("a"), Path("b"))
    assert [row[-1] for row in rows] == ["-", "0.990"]
    assert "| mlm    | full-0.1 | 0      | mlm_accuracy | 0.050 | 0.060 |" in text and "nan" not in text
