"""Iterative magnitude pruning with rewinding (``imp``): its rounds, rewinding, nested masks and the suite rules.

The rounds' mechanics are checked with a stand-in fine-tuning (a known change of the weights), so the expected
masks can be computed independently; one tiny-BERT suite checks the whole cell: exact sparsity, the record's
account of the rounds, determinism, and that a ticket is not one-shot pruning.
"""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks import store
from benchmarks.config import load_suite
from benchmarks.iterative import iterative_prune, rounds_of
from benchmarks.runner import run_suite
from methods.iterative import ROUNDS, round_rates
from methods.prunable import prunable_weights
from methods.select import exact_magnitude_masks
from tests.conftest import tiny_suite_yaml


def _tiny_encoder(seed: int = 0):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)
    return BertModel(config)


def _shift(step: float):
    """A stand-in for fine-tuning that moves every prunable weight by a fixed pattern and keeps pruned ones zero,
    as masked fine-tuning does; it records the masks it was given."""
    seen = []

    def train(model, masks):
        seen.append(None if masks is None else {k: v.clone() for k, v in masks.items()})
        draws.append(float(torch.rand(1)))  # what dropout would draw
        with torch.no_grad():
            for w in prunable_weights(model):
                bump = step * torch.linspace(-1, 1, w.weight.numel()).view_as(w.weight)
                w.weight.add_(bump)
                if masks is not None:
                    w.weight.mul_(masks[w.name])
    draws: list[float] = []
    train.draws = draws
    return train, seen


def test_round_rates_keep_the_same_share_each_round_and_end_on_the_target():
    rates = round_rates(0.75, 2)
    assert rates == [pytest.approx(0.5), 0.75]
    assert round_rates(0.5, 1) == [0.5]
    three = round_rates(0.9, 3)
    assert three[-1] == 0.9 and all(a < b for a, b in zip(three, three[1:]))
    kept = [1 - r for r in three]
    assert kept[1] / kept[0] == pytest.approx(kept[0]) and kept[2] / kept[1] == pytest.approx(kept[0])


def test_one_round_prunes_the_fine_tuned_weights_and_rewinds_the_kept_ones():
    """rounds=1: fine-tune once, keep the largest fine-tuned magnitudes, rewind them to the start values."""
    model = _tiny_encoder()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    config = {"method": "imp", "sparsity": 0.6, "options": {"rounds": 1}}
    train, seen = _shift(0.05)
    twin = _tiny_encoder()
    _shift(0.05)[0](twin, None)
    expected = exact_magnitude_masks({w.name: w.weight for w in prunable_weights(twin)}, 0.6)

    masks, notes, _ = iterative_prune(model, config, seed=0, ctx=None, train=train)
    assert seen == [None]
    assert set(masks) == set(expected) and all(torch.equal(masks[n], expected[n]) for n in masks)
    params = dict(model.named_parameters())
    for name, p in params.items():  # every parameter rewound; the pruned entries zero
        want = start[name] * masks[name] if name in masks else start[name]
        assert torch.equal(p.detach(), want), name
    account = notes["iterative"]
    assert account["rounds"] == 1 and account["rates"] == [0.6] and len(account["training_seconds"]) == 1
    assert 0 < account["kept_also_by_oneshot"] < 1  # the shift reorders magnitudes: not the one-shot mask


def test_rounds_are_nested_and_each_fine_tunes_with_the_last_rounds_masks():
    model = _tiny_encoder()
    train, seen = _shift(0.05)
    masks, notes, _ = iterative_prune(model, {"method": "imp", "sparsity": 0.75, "options": {"rounds": 3}}, 0, None,
                                      train)
    assert len(seen) == 3 and seen[0] is None
    total = sum(m.numel() for m in masks.values())
    for given, rate in zip(seen[1:], notes["iterative"]["rates"]):  # round r+1 trains with round r's masks
        assert sum(int((~m).sum()) for m in given.values()) == round(rate * total)
    assert all(torch.all(masks[n] <= seen[2][n]) for n in masks)  # the final masks inside the last round's
    assert sum(int((~m).sum()) for m in masks.values()) == round(0.75 * total)


def test_every_fine_tuning_draws_what_a_one_shot_cell_draws():
    """Each round's fine-tuning, and the ticket's after the rounds, start from the generator state the cell had:
    round 1 is the dense row's fine-tuning and the ticket differs from a one-shot row in its mask alone."""
    model = _tiny_encoder()
    train, _ = _shift(0.05)
    torch.manual_seed(7)
    expected = float(torch.rand(1))
    torch.manual_seed(7)
    iterative_prune(model, {"method": "imp", "sparsity": 0.75, "options": {"rounds": 3}}, 0, None, train)
    assert train.draws == [expected] * 3
    assert float(torch.rand(1)) == expected  # what the ticket's fine-tuning will draw


def test_a_method_whose_rounds_revive_weights_is_refused():
    """Masks that are not nested (here: a 'fine-tuning' that ignores the masks) are an error, not a ticket."""
    model = _tiny_encoder()

    own = torch.Generator().manual_seed(1)  # its own draws: a new set of weights each round

    def careless(model, masks):
        with torch.no_grad():
            for w in prunable_weights(model):
                w.weight.copy_(torch.randn(w.weight.shape, generator=own))

    with pytest.raises(RuntimeError, match="not nested"):
        iterative_prune(model, {"method": "imp", "sparsity": 0.5, "options": {"rounds": 2}}, 0, None, careless)


def test_rounds_default_to_the_methods_own_default():
    assert rounds_of({"method": "imp", "options": {}}) == ROUNDS
    assert rounds_of({"method": "imp", "options": {"rounds": 4}}) == 4


IMP_ROWS = "[dense, {method: global, sparsity: [0.5]}, {method: imp, sparsity: [0.5], rounds: 2}]"


@pytest.fixture(scope="module")
def imp_runs(tmp_path_factory, tiny_bert, tiny_mirror_session):
    """The tiny suite with an imp row, run twice into separate folders (and once under --stack 3)."""
    tmp = tmp_path_factory.mktemp("imp")
    path = tmp / "imp.yaml"
    path.write_text(tiny_suite_yaml(tiny_bert, name="imp", rows=IMP_ROWS, tasks="[sst2]"))
    suite = load_suite(path=path)
    folders = [tmp / "a", tmp / "b", tmp / "stacked"]
    for folder, stack in zip(folders, (1, 1, 3)):
        run_suite(suite, folder, tiny_mirror_session, progress=False, stack=stack)
    return [store.load_records(f).records for f in folders]


def _by_method(records: dict) -> dict:
    return {r["config"]["method"]: r for r in records.values()}


def test_an_imp_cell_prunes_exactly_and_accounts_for_its_rounds(imp_runs):
    imp = _by_method(imp_runs[0])["imp"]
    assert imp["status"] == "ok"
    achieved = imp["sparsity"]["global_before"]
    assert achieved == pytest.approx(0.5, abs=1 / imp["sparsity"]["prunable_total"])
    assert imp["sparsity"]["global_after"] == pytest.approx(achieved)  # the final fine-tuning keeps the mask
    account = imp["notes"]["iterative"]
    assert account["rounds"] == 2 and account["rates"] == [pytest.approx(1 - math.sqrt(0.5), abs=1e-6), 0.5]
    assert len(account["training_seconds"]) == 2 and account["rewound_to"] == "pre-trained"
    # fine-tuning moved the weights, so the ticket is not one-shot magnitude pruning of the pre-trained weights
    assert 0.5 < account["kept_also_by_oneshot"] < 1


def test_imp_cells_are_deterministic_and_train_alone_under_stack(imp_runs):
    first, second, stacked = (_by_method(r) for r in imp_runs)
    assert first["imp"]["metrics"] == second["imp"]["metrics"]
    assert first["imp"]["notes"]["iterative"]["kept_also_by_oneshot"] == \
        second["imp"]["notes"]["iterative"]["kept_also_by_oneshot"]
    assert "stack" not in stacked["imp"]["notes"].get("finetune_account", {})
    assert stacked["imp"]["metrics"] == first["imp"]["metrics"]
    assert "stack" in stacked["global"]["notes"]["finetune_account"]  # the other rows still stack


def test_imp_cells_are_planned_alone_so_their_rounds_run_once(tiny_bert, tmp_path):
    """A stack captures a cell at its final fine-tuning and replays the cell after the stack trains: an imp cell
    would run its rounds twice, so the plan leaves it alone (the other rows still share a stack key)."""
    from benchmarks import stacking
    from benchmarks.runner import expand

    path = tmp_path / "imp.yaml"
    path.write_text(tiny_suite_yaml(tiny_bert, name="imp", rows=IMP_ROWS, tasks="[sst2]"))
    cells = expand(load_suite(path=path))
    keys = {c.config.get("method"): stacking.stack_key(c.config) for c in cells}
    assert keys["imp"] is None and keys["global"] is not None and keys["global"] == keys["dense"]
    assert [len(g) for g in stacking.plan_groups(cells, 3)] == [2, 1]
