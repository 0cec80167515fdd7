"""The GPU job prepared on the CPU (issue #24): bfloat16 planes round trip, pack/unpack, size guard, script."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from benchmarks import bf16model
from benchmarks.devtools import devicejob
from benchmarks.errors import UserError


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_planes_round_trip_gives_the_bfloat16_rounding_exactly():
    gen = torch.Generator().manual_seed(0)
    state = {"a.weight": torch.randn(7, 5, generator=gen) * 3, "b.bias": torch.randn(11, generator=gen),
             "ids": torch.arange(6, dtype=torch.int64).reshape(2, 3), "tiny": torch.tensor([1e-30, -0.0, 65504.5])}
    planes, manifest = bf16model.to_planes(state)
    assert len(planes["hi"]) == len(planes["lo"]) == 7 * 5 + 11 + 3
    back = bf16model.from_planes(planes, manifest)
    rounded = bf16model.round_state(state)
    assert set(back) == set(state)
    for name in state:
        assert back[name].dtype == rounded[name].dtype
        assert torch.equal(back[name], rounded[name]), name
    # Rounding is to nearest: never further than half a bfloat16 step (8 mantissa bits) from the original.
    rel = ((rounded["a.weight"] - state["a.weight"]).abs() / state["a.weight"].abs()).max().item()
    assert 0 < rel <= 2 ** -8


def test_unpacked_folder_is_the_rounded_model_byte_for_byte(tiny_bert, tmp_path):
    rounded = bf16model.build_rounded_folder(tiny_bert, tmp_path / "rounded")
    bf16model.pack_folder(tiny_bert, tmp_path / "pack", preset=1)
    unpacked = bf16model.unpack_folder(tmp_path / "pack", tmp_path / "unpacked")
    assert _sha(unpacked / bf16model.WEIGHTS) == _sha(rounded / bf16model.WEIGHTS)
    assert _sha(rounded / bf16model.WEIGHTS) != _sha(tiny_bert / bf16model.WEIGHTS)  # a different model
    assert (unpacked / "config.json").read_bytes() == (tiny_bert / "config.json").read_bytes()
    from transformers import AutoModel

    model = AutoModel.from_pretrained(unpacked)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def _git_repo(root: Path, size: int) -> Path:
    root.mkdir()
    (root / "code.py").write_bytes(b"x" * size)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


def test_pack_then_unpack_restores_model_and_data(tiny_bert, tiny_mirror, tmp_path):
    repo = _git_repo(tmp_path / "repo", 1000)
    manifest = devicejob.pack(tmp_path / "job", tiny_mirror, ["sst2", "mrpc"], tiny_bert, wheels=False,
                              repo=repo, preset=1)
    assert "glue/SST-2/train.tsv" in manifest["data_sha256"] and "glue/MRPC/dev.tsv" in manifest["data_sha256"]
    assert manifest["travel_bytes"] >= 1000
    out = devicejob.unpack(tmp_path / "job", tmp_path / "root")
    for rel, digest in out["data_sha256"].items():
        assert _sha(tmp_path / "root" / "data" / rel) == digest == _sha(tiny_mirror / rel)
    model = tmp_path / "root" / "cache" / "models" / devicejob.MODEL_NAME / bf16model.WEIGHTS
    assert _sha(model) == manifest["weights_sha256"]


def test_unpack_refuses_a_damaged_pack(tiny_bert, tiny_mirror, tmp_path):
    repo = _git_repo(tmp_path / "repo", 10)
    devicejob.pack(tmp_path / "job", tiny_mirror, ["mrpc"], tiny_bert, wheels=False, repo=repo, preset=1)
    archive = tmp_path / "job" / devicejob.DATA_ARCHIVE
    archive.write_bytes(archive.read_bytes()[:-10])
    with pytest.raises(UserError, match="does not match its sha256"):
        devicejob.unpack(tmp_path / "job", tmp_path / "root")
    archive.unlink()
    with pytest.raises(UserError, match="is missing .* carry the whole job folder"):
        devicejob.unpack(tmp_path / "job", tmp_path / "root")
    with pytest.raises(UserError, match="has no MANIFEST.json"):
        devicejob.unpack(tmp_path, tmp_path / "root")


def test_pack_refuses_what_would_not_travel(tiny_bert, tiny_mirror, tmp_path):
    repo = _git_repo(tmp_path / "repo", 5000)
    with pytest.raises(UserError, match="over the device call's"):
        devicejob.pack(tmp_path / "job", tiny_mirror, ["mrpc"], tiny_bert, wheels=False, repo=repo, limit=4000,
                       preset=1)


def test_checkout_leaves_room_for_the_pack():
    """The committed files plus the measured pack fit one device call: published boards grow the checkout, and on
    2026-12-05 it had grown past what the pack needed (67.2 MiB in all) without any test noticing."""
    repo = Path(__file__).resolve().parents[1]
    if not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    checkout = devicejob.checkout_size(repo)
    room = (devicejob.TRAVEL_LIMIT - devicejob.PACK_BYTES - checkout) / 2**20
    assert room > 0, (f"the checkout is {checkout / 2**20:.1f} MiB: {-room:.1f} MiB too many for the GPU job's "
                      "pack (devicejob.PACK_BYTES) to travel; shrink what is committed (docs/gpu-job.md)")


def test_unknown_task_is_bad_input(tiny_mirror):
    with pytest.raises(UserError, match="has no mirror files"):
        devicejob.data_files(tiny_mirror, ["cola"])


def test_bert_base_timing_runs_and_prices_both_grids():
    out = devicejob.time_bert_base(steps=2, batch=2, length=8, tiny=True)
    assert out["seconds_per_step"] > 0
    assert set(out["grid_gpu_hours"]) == {"bert-lowsparsity", "bert-highsparsity"}
    low = out["grid_gpu_hours"]["bert-lowsparsity"]
    assert low["rows"] == 17 and low["hours"] > 0


def test_job_script_parses_and_names_what_the_pack_holds():
    script = Path(devicejob.__file__).with_suffix(".sh")
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    for needed in ("devicejob unpack", "minilm-l6-bf16", "time-bert-base", "results.tar.gz", "--set scale=full"):
        assert needed in text


def test_pack_command_answers_a_missing_mirror_with_exit_2(tmp_path, capsys):
    code = devicejob.main(["pack", "--data-dir", str(tmp_path / "nowhere"), "--no-wheels", "--out",
                           str(tmp_path / "job")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no data mirror found") and "\n" not in err


def test_rounded_alias_is_its_own_model(tmp_path, monkeypatch):
    from benchmarks.models import _local_ref, resolve_model

    monkeypatch.setenv("PRUNEBENCH_CACHE_DIR", str(tmp_path))
    _local_ref.cache_clear()
    rounded, original = resolve_model("minilm-l6-bf16"), resolve_model("minilm-l6")
    assert rounded.identity["model"] == "minilm-l6-bf16"
    assert rounded.identity["weights_sha256"] != original.identity["weights_sha256"]
    assert Path(rounded.location) == tmp_path / "models" / "minilm-l6-bf16"
