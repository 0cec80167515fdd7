"""Typed, closed recipes of the BERT task families: what a suite's ``recipe`` (and its scales) may say.

Each family is a frozen dataclass; ``from_mapping`` is shared: an unknown key ("did you mean 'lr'?"),
a value of the wrong type or outside its range is a one-line UserError. A suite's recipe mapping is
checked against every family its tasks use, in every scale, before any cell runs
(``check_suite_recipes``); each cell then builds its task's recipe once and passes it down.

What a cell key hashes: the recipe mapping as resolved from the suite (the values given explicitly,
``recipe`` then ``scales.<scale>`` then ``--set recipe.X``), not the defaults below. That keeps every
committed record's key; a changed default therefore needs the task's ``version`` bumped (as before),
which changes every key of that task.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from benchmarks.errors import UserError, did_you_mean

R = TypeVar("R", bound="RecipeBase")

# Keys a cell sets on the recipe (the suite's protocol fields); never written in a suite's recipe.
CELL_KEYS = ("protocol", "pooling", "pruned_as")


TRAINS = ("finetune",)  # the protocols that fine-tune (docs/protocols.md)
EMBEDS = ("zeroshot", "probe")  # the protocols that judge pooled embeddings, nothing fine-tuned


def _bound(minimum: float | None = None, *, above: float | None = None, maximum: float | None = None,
           choices: tuple = (), protocols: tuple = ()) -> dict:
    """Field metadata: an inclusive minimum/maximum, an exclusive lower bound, or allowed values; ``protocols``:
    the only protocols that read the key (empty: every protocol)."""
    return {"min": minimum, "above": above, "max": maximum, "choices": choices, "protocols": protocols}


@dataclass(frozen=True)
class RecipeBase:
    """Shared by every family: the one ``from_mapping`` with its one-line errors."""

    # Set by the cell from the suite's protocol fields, never from a suite's recipe.
    protocol: str = "finetune"
    pooling: str = "mean"
    pruned_as: Any = None

    family: ClassVar[str] = "recipe"

    @classmethod
    def keys(cls) -> list[str]:
        """The recipe keys a suite may set for this family."""
        return [f.name for f in dataclasses.fields(cls) if f.name not in CELL_KEYS]

    @classmethod
    def from_mapping(cls: type[R], data: Mapping, source: str = "recipe", *, ignore: Iterable[str] = (),
                     **cell: Any) -> R:
        """Validate ``data`` (keys in ``ignore`` belong to other families and are skipped) and build the recipe."""
        known = cls.keys()
        skip = set(ignore)
        values = {}
        for key, value in data.items():
            if key in CELL_KEYS:
                raise UserError(f"{source}: {key!r} is a suite field, not a recipe key; use --set {key}=...")
            if key not in known:
                if key in skip:
                    continue
                raise UserError(f"{source}: unknown recipe key {key!r}; {_hint(key, [*known, *skip])}")
            values[key] = _checked(cls, key, value, source)
        return cls(**values, **cell)

    @classmethod
    def coerce(cls: type[R], recipe: Any, source: str = "recipe") -> R:
        """``recipe`` itself when already typed, else built from a mapping (protocol keys taken as cell fields)."""
        if isinstance(recipe, cls):
            return recipe
        data = dict(recipe or {})
        cell = {k: data.pop(k) for k in CELL_KEYS if k in data}
        other = set(data) - set(cls.keys())  # another family's keys, as in a suite shared by several tasks
        return cls.from_mapping(data, source, ignore=other & ALL_KEYS, **cell)


# Names other libraries use for a recipe key, so their spellings (and typos of them) find ours.
ALIASES = {"learning_rate": "lr", "num_train_epochs": "epochs", "num_epochs": "epochs",
           "train_batch_size": "batch_size",
           "per_device_train_batch_size": "batch_size", "max_seq_length": "max_length", "warmup": "warmup_ratio",
           "per_device_eval_batch_size": "eval_batch_size"}


def _hint(key: str, known: list[str]) -> str:
    """'did you mean ...?' naming the closest known key (through ALIASES), else the known keys."""
    aliases = {a: k for a, k in ALIASES.items() if k in known}
    return did_you_mean(key, known, aliases=aliases) or f"known: {', '.join(sorted(known))}"


def _type_name(kind: Any) -> str:
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    base = args[0] if args else kind
    name = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}.get(base, str(base))
    return f"{name} or null" if args and type(None) in typing.get_args(kind) else name


def _checked(cls: type, key: str, value: Any, source: str) -> Any:
    """``value`` when it has the field's type and lies in its range (ints are accepted for floats)."""
    kind = typing.get_type_hints(cls)[key]
    meta = next(f.metadata for f in dataclasses.fields(cls) if f.name == key)
    optional = type(None) in typing.get_args(kind)
    base = next((a for a in typing.get_args(kind) if a is not type(None)), kind)
    if value is None and optional:
        return None
    ok = (isinstance(value, bool) if base is bool else
          isinstance(value, (int, float)) and not isinstance(value, bool) if base is float else
          isinstance(value, int) and not isinstance(value, bool) if base is int else isinstance(value, base))
    low, above, high, choices = meta.get("min"), meta.get("above"), meta.get("max"), meta.get("choices")
    if not ok:
        default = cls.__dataclass_fields__[key].default
        example = default if default is not None else (low if low is not None else 1)
        raise UserError(f"{source}: recipe.{key} must be {_type_name(kind)}, got {value!r}; "
                        f"e.g. --set recipe.{key}={str(example).lower() if base is bool else example}")
    if base is float and not math.isfinite(value):  # NaN passes every range check; inf trains a NaN model
        default = cls.__dataclass_fields__[key].default
        raise UserError(f"{source}: recipe.{key}={value!r} is not a finite number; give a finite value, "
                        f"e.g. --set recipe.{key}={default if default is not None else 1}")
    if choices and value not in choices:
        raise UserError(f"{source}: recipe.{key}={value!r} is not supported; use one of {', '.join(choices)}")
    if ((low is not None and value < low) or (above is not None and value <= above)
            or (high is not None and value > high)):
        want = ((f"> {above:g}" if above is not None else f">= {low:g}")
                + (f" and <= {high:g}" if high is not None else ""))
        none = " (or null for no limit)" if optional else ""
        raise UserError(f"{source}: recipe.{key}={value!r} is out of range; use a value {want}{none}")
    return value


@dataclass(frozen=True)
class EvalRecipe(RecipeBase):
    """What every BERT task family reads: tokenisation and evaluation batches."""

    max_length: int = field(default=128, metadata=_bound(8))
    eval_batch_size: int = field(default=64, metadata=_bound(1))


@dataclass(frozen=True)
class GlueRecipe(EvalRecipe):
    """GLUE fine-tuning (Devlin et al.'s recipe) and the zeroshot/probe protocol's subset sizes."""

    family: ClassVar[str] = "glue"
    optimizer: str = field(default="adamw", metadata=_bound(choices=("adamw",), protocols=TRAINS))
    lr: float = field(default=2e-5, metadata=_bound(above=0, protocols=TRAINS))
    batch_size: int = field(default=32, metadata=_bound(1, protocols=TRAINS))
    epochs: float = field(default=3.0, metadata=_bound(above=0, protocols=TRAINS))
    warmup_ratio: float = field(default=0.1, metadata=_bound(0, maximum=1, protocols=TRAINS))
    weight_decay: float = field(default=0.01, metadata=_bound(0, protocols=TRAINS))
    train_limit: int | None = field(default=None, metadata=_bound(1))  # None: the whole train split
    eval_limit: int | None = field(default=None, metadata=_bound(1))
    group_by_length: bool = field(default=False, metadata=_bound(protocols=TRAINS))
    # zeroshot / probe: the train subset for centroids, threshold or probe (default: train_limit)
    fit_limit: int | None = field(default=None, metadata=_bound(1, protocols=EMBEDS))
    dev_split_eval_limit: int | None = field(default=None, metadata=_bound(1))
    drift_limit: int = field(default=256, metadata=_bound(1))
    # bf16: torch.autocast to bfloat16 in the forward passes (weights, gradients, AdamW stay float32). A cell key
    # holds it only when it is not the default fp32 (benchmarks/kinds/prune_finetune.py), so old keys stay.
    precision: str = field(default="fp32", metadata=_bound(choices=("fp32", "bf16")))


@dataclass(frozen=True)
class MlmRecipe(EvalRecipe):
    """Masked-LM evaluation on WikiText-2 and the fitting of a missing MLM head."""

    family: ClassVar[str] = "mlm"
    mlm_block_size: int = field(default=128, metadata=_bound(8))
    mlm_eval_blocks: int | None = field(default=None, metadata=_bound(1))  # None: every block
    mlm_head_sentences: int = field(default=20000, metadata=_bound(1))
    mlm_head_epochs: int = field(default=4, metadata=_bound(1))
    mlm_head_lr: float = field(default=1e-3, metadata=_bound(above=0))


FAMILIES: tuple[type[RecipeBase], ...] = (GlueRecipe, MlmRecipe)
ALL_KEYS = frozenset(k for fam in FAMILIES for k in fam.keys())


def check_recipe(recipe: Mapping, families: Iterable[type[RecipeBase]], source: str, closed: bool = True) -> None:
    """Raise UserError unless every key of ``recipe`` belongs to one of ``families`` and each family accepts its part.

    A key of another built-in family (e.g. ``lr`` in an MLM-only suite) is allowed: suites share one recipe.
    ``closed=False`` (a plug-in task that declares no recipe type reads the mapping): unknown keys pass.
    """
    families = list(families)
    known = {k for fam in families for k in fam.keys()} | ALL_KEYS
    for key in recipe:
        if key in CELL_KEYS:
            raise UserError(f"{source}: {key!r} is a suite field, not a recipe key; use --set {key}=...")
        if key not in known and closed:
            raise UserError(f"{source}: unknown recipe key {key!r}; {_hint(key, sorted(known))}")
    for fam in families:
        fam.from_mapping(recipe, source, ignore=set(recipe) - set(fam.keys()))


def unread_keys(keys: Iterable[str], protocol: str) -> list[str]:
    """The recipe keys among ``keys`` that no task family reads under ``protocol`` (e.g. ``lr`` under zeroshot)."""
    readers: dict[str, set] = {}
    for fam in FAMILIES:
        for f in dataclasses.fields(fam):
            if f.name not in CELL_KEYS:
                readers.setdefault(f.name, set()).update(f.metadata.get("protocols") or (*TRAINS, *EMBEDS))
    return [k for k in keys if k in readers and protocol not in readers[k]]
