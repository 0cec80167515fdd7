"""The generic registry: decorator, metadata, did-you-mean, lazy entry points."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from benchmarks import registry
from benchmarks.registry import KINDS, METHODS, MODELS, RENDERERS, TASKS, Registry, UnknownName


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
    with pytest.raises(UnknownName) as info:  # a LookupError; the CLI treats it like a UserError (exit 2)
        METHODS.get("gloabl")
    message = str(info.value)
    assert "\n" not in message and "did you mean 'global'" in message
    assert isinstance(info.value, LookupError) and info.value.name == "gloabl" and "global" in info.value.choices
    with pytest.raises(UnknownName, match="known: "):
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
    assert "prune-finetune" in KINDS.names()
    assert {"prune-finetune", "bert-correlations", "mnist-correlations"} <= set(RENDERERS.names())


def test_builtins_load_on_first_lookup_in_a_fresh_process():
    """A library user who never calls the CLI still finds the built-ins; a typo still gets the hint."""
    import subprocess
    import sys

    code = ("import sys; from benchmarks.registry import METHODS, TASKS, UnknownName\n"
            "assert 'methods' not in sys.modules\n"
            "assert METHODS.get('global').__module__ == 'methods.magnitude'\n"
            "try:\n    TASKS.get('sst')\nexcept UnknownName as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("unknown task 'sst'; did you mean 'sst2'")
