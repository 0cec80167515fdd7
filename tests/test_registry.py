"""The generic registry: decorator, metadata, did-you-mean, lazy entry points."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from benchmarks import registry
from benchmarks.errors import UserError
from benchmarks.registry import ANALYSES, METHODS, MODELS, TASKS, Registry


def test_decorator_and_metadata():
    reg = Registry("widget")

    @reg.register("alpha", colour="red")
    def alpha():
        return 1

    assert reg.get("alpha") is alpha and reg.meta("alpha") == {"colour": "red"}
    assert reg.names() == ["alpha"] and "alpha" in reg and list(reg) == ["alpha"]
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("alpha", lambda: 2)


def test_unknown_name_is_one_line_with_close_names():
    with pytest.raises(UserError) as info:
        METHODS.get("gloabl")
    message = str(info.value)
    assert "\n" not in message and "did you mean 'global'" in message
    with pytest.raises(UserError, match="known: "):
        TASKS.get("zzzzzzzz")


def test_entry_points_load_lazily(monkeypatch):
    calls = []

    def fake_entry_points(group):
        calls.append(group)
        return [EntryPoint("ep-thing", "builtins:len", group)]

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    reg = Registry("thing", "prunebench.things")
    assert calls == []  # nothing is loaded at construction
    assert reg.get("ep-thing") is len
    reg.get("ep-thing")
    assert calls == ["prunebench.things"]  # scanned once
    reg.reload_entry_points()
    reg.names()
    assert calls == ["prunebench.things"] * 2


def test_builtin_registries_filled():
    assert {"global", "lower", "upper", "mixed", "random"} <= set(METHODS.names())
    assert {"sst2", "mrpc", "stsb", "qnli", "mnli"} <= set(TASKS.names())
    assert {"minilm-l6", "bert-base-uncased"} <= set(MODELS.names())
    assert "prune-finetune" in ANALYSES.names()
