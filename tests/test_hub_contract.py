"""The contract with the hub, tested offline (issue 12, item 5).

Stand-ins of nyu-mll/glue, Salesforce/wikitext, ylecun/mnist and google-bert/bert-base-uncased in the
hub's layout and schema (tests/hub_standin.py) are served through $PRUNEBENCH_HUB_DIR, the one seam
between the hub code paths and the network; the code calls ``datasets.load_dataset`` exactly as it
does against the hub. The same rows read through the mirror path and the hub path must agree, so a
renamed column, a split name or a label order that differs between hub and mirror fails here.
"""

from __future__ import annotations

import hub_standin as hub
import numpy as np
import pytest

from benchmarks import paths

ROWS = 4


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory, real_data_dir, minilm_path):
    """One folder of stand-in repositories (small BERT variant for runs)."""
    import datasets

    datasets.disable_progress_bars()
    root = tmp_path_factory.mktemp("hub")
    hub.make_glue(root, real_data_dir, rows=ROWS)
    hub.make_wikitext(root, real_data_dir)
    hub.make_mnist(root, real_data_dir)
    hub.make_bert(root, minilm_path, small=True)
    return root


@pytest.fixture
def use_hub(monkeypatch, tmp_path):
    """Point the hub seam at a folder; ``datasets`` caches under tmp."""
    import datasets

    datasets.disable_progress_bars()
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))

    def use(root):
        monkeypatch.setenv(paths.HUB_ENV, str(root))
        return root

    return use


# -- GLUE -----------------------------------------------------------------------------------------

HUB_SPLIT = {"train": "train", "dev": "validation", "dev_mismatched": "validation_mismatched"}
CASES = [(t, s) for t in ("mrpc", "stsb", "sst2", "qnli") for s in ("train", "dev")] + \
        [("mnli", "train"), ("mnli", "dev"), ("mnli", "dev_mismatched")]


def _hub_split(task: str, split: str) -> str:
    return "validation_matched" if (task, split) == ("mnli", "dev") else HUB_SPLIT[split]


def _expected(task: str, split: str, mirror):
    """The rows the stand-in was made from, as the code's mirror path reads them (MNLI: its label map)."""
    from benchmarks.data import GLUE, read_glue_tsv

    rel = hub.GLUE_SOURCES[task][_hub_split(task, split)]
    spec = GLUE[task]
    if task == "mnli":  # the mirror holds 1k samples without a header: map their names with the code's table
        frame = hub.read_mirror_rows(mirror, rel, ROWS)
        labels = np.array([spec.label_map[v] for v in frame["gold_label"]])
        return frame["premise"].tolist(), frame["hypothesis"].tolist(), labels
    ex = read_glue_tsv(mirror / rel, spec).subset(range(ROWS))
    return ex.text_a, ex.text_b, ex.labels


def mismatches(task: str, split: str, mirror) -> list[str]:
    """How the hub path's rows differ from the mirror's (empty: they agree)."""
    from benchmarks.data import load_glue

    got = load_glue(task, split, None)
    a, b, labels = _expected(task, split, mirror)
    problems = []
    if got.text_a != a:
        problems.append(f"first text column differs: {got.text_a[:1]} vs {a[:1]}")
    if (got.text_b or None) != (b or None):
        problems.append("second text column differs")
    if got.labels.dtype.kind != np.asarray(labels).dtype.kind or not np.array_equal(got.labels, labels):
        problems.append(f"labels differ: hub {got.labels.tolist()} vs mirror {np.asarray(labels).tolist()}")
    return problems


@pytest.mark.parametrize("task,split", CASES, ids=[f"{t}-{s}" for t, s in CASES])
def test_glue_hub_path_reads_what_the_mirror_holds(task, split, hub_root, use_hub, real_data_dir):
    from benchmarks.data import load_glue

    use_hub(hub_root)
    assert mismatches(task, split, real_data_dir) == []
    source = load_glue(task, split, None).source
    assert f"hub:nyu-mll/glue/{task}/{_hub_split(task, split)}" in source


def _variant(tmp_path, real_data_dir, use_hub, **departure):
    root = tmp_path / "variant"
    hub.make_glue(root, real_data_dir, rows=ROWS, **departure)
    return use_hub(root)


def test_a_renamed_column_fails(tmp_path, real_data_dir, use_hub):
    _variant(tmp_path, real_data_dir, use_hub, rename={"mrpc": {"sentence1": "text1"}})
    with pytest.raises((KeyError, ValueError), match="sentence1"):  # datasets: "Column 'sentence1' doesn't exist"
        mismatches("mrpc", "dev", real_data_dir)


def test_a_renamed_split_fails(tmp_path, real_data_dir, use_hub):
    from benchmarks.errors import DataMissing

    splits = dict(hub.GLUE_SOURCES)
    matched = splits["mnli"]["validation_matched"]
    splits["mnli"] = {"train": matched, "validation": matched}  # "validation" where the hub has *_matched
    _variant(tmp_path, real_data_dir, use_hub, splits=splits)
    with pytest.raises(DataMissing, match="could not be loaded from the hub"):
        mismatches("mnli", "dev", real_data_dir)


@pytest.mark.parametrize("task", ["qnli", "mnli", "mrpc"])
def test_a_different_label_order_fails(task, tmp_path, real_data_dir, use_hub):
    features = dict(hub.GLUE_FEATURES)
    names = features[task]["label"]
    features[task] = dict(features[task], label=[names[1], names[0], *names[2:]])
    _variant(tmp_path, real_data_dir, use_hub, features=features)
    problems = mismatches(task, "dev", real_data_dir)
    assert len(problems) == 1 and problems[0].startswith("labels differ"), problems


# -- WikiText-2 and MNIST ---------------------------------------------------------------------------

def test_wikitext_hub_path_reads_the_mirror_text(hub_root, use_hub, real_data_dir):
    from benchmarks.tasks.mlm import load_wikitext

    use_hub(hub_root)
    text, source = load_wikitext(None, "test")
    with open(real_data_dir / "wikitext-2-raw" / "wiki.test.raw", encoding="utf-8") as fh:
        head = "".join(line for _, line in zip(range(120), fh))
    assert text.split() == head.split() and len(text.split()) > 1000  # blank lines are empty rows on the hub
    assert list(source) == ["hub:Salesforce/wikitext/wikitext-2-raw-v1/test"]


def test_mnist_hub_path_reads_the_mirror_digits(hub_root, use_hub, real_data_dir):
    from benchmarks.mnist.data import load_split

    use_hub(hub_root)
    for split in ("train", "test"):
        got = load_split(split, None)
        images, labels = hub.mirror_mnist(real_data_dir, split, 200)
        assert got.images.shape == (200, 784)
        assert np.array_equal(got.images.numpy(), images.reshape(200, 784))
        assert np.array_equal(got.labels.numpy(), labels.astype(np.int64))
        assert list(got.sha256) == [f"hub:ylecun/mnist:{split}"]


def test_mnist_label_order_difference_fails(tmp_path, use_hub, real_data_dir):
    import datasets

    from benchmarks.mnist.data import load_split

    images, labels = hub.mirror_mnist(real_data_dir, "test", 50)
    names = [str(9 - i) for i in range(10)]  # a card listing the digits backwards
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    from PIL import Image

    columns = {"image": [Image.fromarray(im, mode="L") for im in images],
               "label": [names.index(str(v)) for v in labels]}
    root = tmp_path / "reversed"
    hub.write_repo(root, hub.MNIST_ID, {hub.MNIST_CONFIG: {"train": columns, "test": columns}},
                   {hub.MNIST_CONFIG: feats})
    use_hub(root)
    assert not np.array_equal(load_split("test", None).labels.numpy(), labels.astype(np.int64))


# -- the model --------------------------------------------------------------------------------------

def test_bert_base_uncased_stand_in_loads_through_the_hub_id(tmp_path, minilm_path, use_hub, monkeypatch):
    """The real config (12 layers, hidden 768, vocab 30522) with random weights loads where the hub's would."""
    import transformers
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoModelForSequenceClassification

    transformers.logging.set_verbosity_error()  # the load reports list the heads a task does not use

    from benchmarks.models import _local_ref, resolve_model

    hub.make_bert(tmp_path / "hub", minilm_path, small=False)
    hub_ref = resolve_model("bert-base-uncased")  # no seam: the hub id, as a networked user gets it
    use_hub(tmp_path / "hub")
    _local_ref.cache_clear()
    ref = resolve_model("bert-base-uncased")
    assert ref.identity == hub_ref.identity == {"model": "google-bert/bert-base-uncased", "revision": "main"}
    assert ref.location == str(tmp_path / "hub" / hub.BERT_ID) and not ref.is_local
    config = AutoConfig.from_pretrained(ref.location)
    assert (config.num_hidden_layers, config.hidden_size, config.vocab_size) == (12, 768, 30522)
    _, info = AutoModelForSequenceClassification.from_pretrained(ref.location, num_labels=2, output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"]
    _, info = AutoModelForMaskedLM.from_pretrained(ref.location, output_loading_info=True)
    assert not info["missing_keys"]  # the MLM head is in the checkpoint: the mlm task uses it, fits none


# -- every task through the hub code path -------------------------------------------------------------

SUITE = """\
name: hub-contract
kind: prune-finetune
model: bert-base-uncased
seeds: [0]
tasks: [mrpc, stsb, sst2, qnli, mnli, mlm]
rows: [dense, {method: global, sparsity: [0.5]}]
recipe: {lr: 1.0e-3, batch_size: 2, epochs: 1, max_length: 32, warmup_ratio: 0.1, weight_decay: 0.01,
         train_limit: 2, eval_limit: 2, mlm_block_size: 32, mlm_eval_blocks: 2, eval_batch_size: 2}
"""


class _OneProcess:
    is_main_process, num_processes, device = True, 1, "cpu"

    def wait_for_everyone(self):
        pass


def test_every_task_runs_through_the_hub_code_path(hub_root, use_hub, tmp_path):
    from benchmarks import store
    from benchmarks.config import parse_yaml, suite_from_mapping
    from benchmarks.runner import run_suite

    use_hub(hub_root)
    suite = suite_from_mapping(parse_yaml(SUITE), "hub-contract")
    results = tmp_path / "results"
    summary = run_suite(suite, results, None, progress=False)
    records = store.load_records(results).records.values()
    assert summary.total == 12 and summary.ok == 12, summary.failed + summary.data_skipped
    for record in records:
        task = record["config"]["task"]
        assert record["config"]["model"] == {"model": "google-bert/bert-base-uncased", "revision": "main"}
        data = record["provenance"]["data"]
        want = "hub:Salesforce/wikitext/" if task == "mlm" else f"hub:nyu-mll/glue/{task}/"
        assert any(k.startswith(want) for k in data), data
        assert not record["provenance"]["model_location_is_local"]
    mnli = next(r for r in records if r["config"]["task"] == "mnli")
    assert any(k.startswith("mismatched_") for k in mnli["metrics"])  # both MNLI dev sets were read
    assert any(k.endswith("validation_mismatched") for k in mnli["provenance"]["data"])


def test_mnist_suite_runs_through_the_hub_code_path(hub_root, use_hub, tmp_path):
    from benchmarks import store
    from benchmarks.config import load_suite
    from benchmarks.mnist.data import _load_hub
    from benchmarks.runner import run_suite

    use_hub(hub_root)
    _load_hub.cache_clear()
    suite = load_suite("mnist-ci")
    suite = suite.__class__(**{**suite.__dict__, "options": {**suite.options, "models": 2, "train_limit": 120},
                               "recipe": {**suite.recipe, "epochs": 1, "chunk": 2}})
    results = tmp_path / "results"
    summary = run_suite(suite, results, None, progress=False, accelerator=_OneProcess())
    assert summary.ok == summary.total == 1, summary.failed + summary.data_skipped
    (record,) = store.load_records(results).records.values()
    assert set(record["provenance"]["data"]) == {"hub:ylecun/mnist:train", "hub:ylecun/mnist:test"}
