"""One generic registry for methods, tasks, models, suite kinds and report renderers.

This module is a leaf: it imports nothing of the project, so every package can register into it
and nothing it imports can import it back. Entries come from two places, both loaded lazily, on
the first lookup that needs them:

- Built-ins: each package registers its own, with decorators, when it is imported. A registry
  holds only the *name* of the package that owns its built-ins (data, e.g. ``"methods"``) and
  imports it with importlib on its first lookup. Why not let the CLI import them: a library user
  who calls ``METHODS.get("global")`` without the CLI must get the same answer; why not a list of
  modules here: which modules hold the built-ins is the package's business (``methods/__init__.py``
  imports its method modules), so adding a built-in never touches this file.
- Plug-ins: entry points in the groups ``prunebench.methods``, ``prunebench.tasks``,
  ``prunebench.models``, ``prunebench.kinds`` (suite kinds), ``prunebench.protocols`` (how a
  pruned encoder is judged) and ``prunebench.reports`` (renderers); an entry point names a module
  whose import registers itself, or the object.

An unknown name raises ``UnknownName`` (a ``LookupError``, one line, with close names); the CLI
treats it like ``benchmarks.errors.UserError`` (exit status 2). It is not a ``UserError`` subclass
because that would make this module import ``benchmarks.errors``.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownName(LookupError):
    """A name no registry entry has, or a plug-in that failed to load: one line naming the fix.

    The CLI and the runner catch it beside ``benchmarks.errors.UserError``: both mean bad input.
    """

    def __init__(self, message: str, kind: str = "", name: str = "", choices: tuple = (), broken: bool = False) -> None:
        super().__init__(message)
        self.kind, self.name, self.choices = kind, name, tuple(choices)
        self.broken = broken  # the name is a plug-in entry point that failed to import

    def __str__(self) -> str:  # LookupError would quote the message like a KeyError
        return str(self.args[0])


class Registry(Generic[T]):
    """A name -> object mapping with lazy entry points and 'did you mean' on a typo."""

    def __init__(self, kind: str, entry_point_group: str | None = None, builtins: str | None = None,
                 documented: bool = False) -> None:
        self.kind = kind
        self.documented = documented  # refuse an entry without a docstring (``list`` prints its first line)
        self.entry_point_group = entry_point_group
        self.builtins = builtins  # the package whose import registers the built-in entries
        self._builtins_loaded = builtins is None
        self._items: dict[str, T] = {}
        self._meta: dict[str, dict] = {}
        self._entry_points_loaded = False
        self._broken: dict[str, str] = {}  # entry point name -> why it failed to import

    def register(self, name: str, obj: T | None = None, **meta) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name`` with optional metadata; used bare or as a decorator."""
        if obj is not None:
            self._add(name, obj, meta)
            return obj

        def decorator(fn: T) -> T:
            self._add(name, fn, meta)
            return fn

        return decorator

    def _add(self, name: str, obj: T, meta: dict | None = None) -> None:
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        if self.documented and not (getattr(obj, "__doc__", None) or "").strip():
            raise ValueError(f"{self.kind} {name!r} has no docstring; add a one-line docstring saying what it "
                             f"does (python -m benchmarks list {self.kind}s prints its first line)")
        self._items[name] = obj
        self._meta[name] = dict(meta or {})

    def meta(self, name: str) -> dict:
        """Metadata given at registration (e.g. a method's example options); {} when none."""
        self.get(name)
        return dict(self._meta.get(name, {}))

    def unregister(self, name: str) -> None:
        """Remove an entry (tests and plugin reloads)."""
        self._items.pop(name, None)
        self._meta.pop(name, None)

    def unregister_module(self, module: str) -> list[str]:
        """Remove every entry whose object was defined in ``module`` (a plug-in file loaded again); return them."""
        names = [n for n, obj in self._items.items() if getattr(obj, "__module__", None) == module]
        for name in names:
            self.unregister(name)
        return names

    def reload_entry_points(self) -> None:
        """Forget which entry points were loaded so the next lookup scans the group again."""
        self._entry_points_loaded = False
        self._broken.clear()

    def load_builtins(self) -> None:
        """Import the package that registers the built-in entries (once; its import registers them)."""
        if not self._builtins_loaded:
            self._builtins_loaded = True
            importlib.import_module(self.builtins)

    def _load(self) -> None:
        self.load_builtins()
        if self._entry_points_loaded or self.entry_point_group is None:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.entry_point_group):
            if ep.name in self._items:
                continue
            try:
                obj = ep.load()
                # An entry point may name a module whose import registers itself, or the object.
                if ep.name not in self._items:
                    self._add(ep.name, obj)
            except Exception as exc:  # a broken plug-in must not break the commands that do not need it
                self._broken[ep.name] = _broken_reason(self.kind, ep, exc)
                print(f"warning: {self._broken[ep.name]}", file=sys.stderr)

    def get(self, name: str) -> T:
        """Return the entry called ``name`` or raise a one-line ``UnknownName`` with close names."""
        self._load()
        if name in self._items:
            return self._items[name]
        if name in self._broken:
            raise UnknownName(self._broken[name], self.kind, name, tuple(self._items), broken=True)
        # difflib directly: benchmarks.errors.did_you_mean is the shared helper, but a leaf cannot import it
        close = difflib.get_close_matches(name, list(self._items), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = ", ".join(sorted(self._items))
        raise UnknownName(f"unknown {self.kind} {name!r}; {hint or 'known: ' + known}".rstrip(), self.kind, name,
                          tuple(self._items))

    def names(self) -> list[str]:
        """All registered names, sorted."""
        self._load()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _broken_reason(kind: str, ep, exc: Exception) -> str:
    """One line naming a plug-in entry point that failed to load, why, and the fix."""
    text = str(exc).strip().splitlines()
    why = f"{exc.__class__.__name__}: {text[0][:160]}" if text else exc.__class__.__name__
    dist = getattr(getattr(ep, "dist", None), "name", None)
    package = f" (package {dist})" if dist else ""
    return (f"plug-in {kind} {ep.name!r} = {ep.value}{package} failed to import ({why}); "
            f"fix or uninstall that package")


METHODS: Registry = Registry("method", "prunebench.methods", builtins="methods", documented=True)
TASKS: Registry = Registry("task", "prunebench.tasks", builtins="benchmarks.tasks")
MODELS: Registry = Registry("model", "prunebench.models", builtins="benchmarks.models")
KINDS: Registry = Registry("suite kind", "prunebench.kinds", builtins="benchmarks.kinds")
# Protocols of the prune-finetune suites: how a pruned encoder is judged (fine-tune, zero-shot, probe, ...).
PROTOCOLS: Registry = Registry("protocol", "prunebench.protocols", builtins="benchmarks.protocols")
# Report renderers, one per suite kind: ``fn(suite, frame, fmt, out) -> text`` (see reports.render).
RENDERERS: Registry = Registry("report renderer", "prunebench.reports", builtins="reports")
REGISTRIES = (METHODS, TASKS, MODELS, KINDS, PROTOCOLS, RENDERERS)


def load_builtins() -> None:
    """Import every package that registers built-in entries (e.g. before migrating old records)."""
    for registry in REGISTRIES:
        registry.load_builtins()


@dataclass(frozen=True)
class MethodSpec:
    """What a method says about itself: its options (closed), rates, label and nominal overall sparsity.

    The runner and the reports read this instead of naming methods. ``options`` maps each option to its
    type(s); ``None`` (a plug-in that declares nothing) accepts any option. ``required`` options must be
    given; ``takes_sparsity`` False means the rates live in ``rate_options`` (``sparsity`` is then refused).
    ``label(sparsity, options)`` and ``nominal(sparsity, options)`` default to ``name-0.5`` / ``name-2:4``
    and the rate itself (N/M for an N:M pattern).
    """

    name: str
    options: Mapping[str, tuple] | None = None
    required: tuple = ()
    takes_sparsity: bool = True
    rate_options: tuple = ()
    groups: Callable | None = None
    validate: Callable | None = None
    calibration: bool = False
    patterns: bool = False
    label: Callable | None = None
    nominal: Callable | None = None
    example_sparsity: float | None = 0.3
    example_options: Mapping = field(default_factory=dict)
    title: str | None = None  # how plots name the method (default: its name)
    color: str | None = None  # its colour in every plot (a matplotlib colour; default: one after the built-ins')
    # Bump when the method would give other masks or weights: a version above 1 joins the cell key, and
    # tests/test_code_versions.py fails while a built-in's source changed at an unchanged version.
    version: int = 1
    # The method prunes in rounds with the cell's fine-tuning between them (benchmarks/iterative.py): its rows
    # need a protocol and tasks that fine-tune, and train alone under run --stack.
    trains: bool = False

    def check(self, sparsity, options: Mapping) -> None:
        """Raise ValueError (one line, with a fix) on an option or rate this method does not take."""
        example = {"method": self.name, **({"sparsity": self.example_sparsity} if self.takes_sparsity else {}),
                   **self.example_options}
        example_text = "{" + ", ".join(f"{k}: {v}" for k, v in example.items()) + "}"
        if self.options is not None:
            for key, value in options.items():
                if key not in self.options:
                    takes = ", ".join(self.options) or "no options"
                    raise ValueError(f"method {self.name!r} has no option {key!r} (it takes: {takes}); "
                                     f"remove it, e.g. {example_text}")
                kinds = self.options[key]
                # bool is an int subclass: a bool passes only where bool itself is allowed.
                type_ok = isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool))
                if value is not None and not type_ok:
                    want = " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)
                    raise ValueError(f"method {self.name!r} option {key!r} must be {want}, got {value!r}; "
                                     f"fix the row, e.g. {example_text}")
        missing = [k for k in self.required if options.get(k) is None]
        if missing:
            raise ValueError(f"method {self.name!r} needs option(s) {', '.join(map(repr, missing))}; "
                             f"e.g. {example_text}")
        if not self.takes_sparsity and sparsity is not None:
            rates = " and ".join(map(repr, self.rate_options)) or "its options"
            raise ValueError(f"method {self.name!r} takes its rates from {rates}, not 'sparsity'; "
                             f"drop 'sparsity', e.g. {example_text}")
        if self.takes_sparsity and sparsity is None:
            raise ValueError(f"method {self.name!r} needs 'sparsity: <rate in [0, 1)>', e.g. {example_text}")


_KIND_NAMES = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}


def method_spec(name: str) -> MethodSpec:
    """The registered method's spec (a plug-in registered without ``register_method`` gets an open one)."""
    spec = METHODS.meta(name).get("spec")
    return spec if spec is not None else MethodSpec(name)


def trains_between_rounds(method: str | None) -> bool:
    """The row's method prunes in rounds with fine-tuning between them (``register_method(..., trains=True)``,
    benchmarks/iterative.py); the dense row, which names no registered method, does not."""
    return method not in (None, "dense") and method_spec(method).trains


def register_method(name: str, *, example_options: dict | None = None, example_sparsity: float | None = 0.3,
                    groups: Callable | None = None, rate_options: tuple = (), validate: Callable | None = None,
                    calibration: bool = False, label: Callable | None = None, patterns: bool = False,
                    options: Mapping[str, tuple] | None = None, required: tuple = (), takes_sparsity: bool = True,
                    nominal: Callable | None = None, title: str | None = None, color: str | None = None,
                    version: int = 1, trains: bool = False):
    """Decorator: register a pruning method ``fn(model, sparsity, generator, **options) -> masks``.

    The method returns keep-masks ``{param name: bool tensor}``, or a ``methods.PruneResult`` holding
    masks plus replacement values for the kept weights (SparseGPT); the runner applies both.
    ``example_options``/``example_sparsity``: a valid call for generic tests and ``list methods``
    (``example_sparsity=None`` for methods whose rates live in the options, like ``mixed``).
    ``groups(weights, sparsity, options) -> {group: (param names, rate)}`` says which weights the
    method prunes at which exact rate; the default is one group, all prunable weights at ``sparsity``.
    ``rate_options``: option names that are rates in [0, 1) (checked like ``sparsity``).
    ``validate(sparsity, options)``: raises ValueError on arguments the method will refuse, so a
    run stops with exit status 2 before any cell instead of failing cells.
    ``calibration``: the method needs calibration data; it is then called with the keyword
    ``calibration=`` a ``benchmarks.calibration.CalibrationData`` (token sequences fixed by the suite's
    ``calibration`` field, which then joins the cell key).
    ``label(sparsity, options) -> str``: the leaderboard row label (default ``<name>-<sparsity>``,
    or ``<name>-N:M`` with an N:M ``pattern`` option).
    ``patterns``: the method takes the option ``pattern`` ("unstructured" or "N:M"); generic tests
    then check its N:M masks.
    ``options``: {option: (type, ...)}, the closed option schema (None: any option, for plug-ins that
    predate it); ``required``: options that must be given; ``takes_sparsity``: False when the rates live
    in ``rate_options``; ``nominal(sparsity, options) -> float``: the overall sparsity the row aims at.
    ``title``/``color``: the method's name and colour in plots.
    ``version``: bump it when the method's results change; above 1 it joins the cell key (benchmarks/identity.py).
    ``trains``: the function is one round of an iterative method (``fn`` prunes the current weights at a rate);
    the runner fine-tunes the cell's model between its ``rounds`` rounds and rewinds the kept weights
    (benchmarks/iterative.py, e.g. ``imp``).
    All of it is kept as a ``MethodSpec`` (``method_spec(name)``).
    """
    if patterns and options is not None:
        options = {"pattern": (str,), **options}
    spec = MethodSpec(name, None if options is None else dict(options), tuple(required), bool(takes_sparsity),
                      tuple(rate_options), groups, validate, bool(calibration), bool(patterns), label, nominal,
                      example_sparsity, dict(example_options or {}), title, color, int(version), bool(trains))
    return METHODS.register(name, example_options=dict(example_options or {}), example_sparsity=example_sparsity,
                            groups=groups, rate_options=tuple(rate_options), validate=validate,
                            calibration=bool(calibration), label=label, patterns=bool(patterns), spec=spec)


def register_task(name: str):
    """Decorator: register a task class (see ``benchmarks.tasks.base.Task``)."""
    return TASKS.register(name)


def register_model(name: str):
    """Decorator: register a model alias resolver ``fn() -> str`` (hub id or local folder)."""
    return MODELS.register(name)


def register_kind(name: str):
    """Decorator: register a suite kind (see ``benchmarks.kinds``)."""
    return KINDS.register(name)


RENDER_FORMATS = ("md", "html")  # what a renderer writes unless it registers more (``formats``)


def register_renderer(kind: str, formats: tuple[str, ...] = RENDER_FORMATS):
    """Decorator: register ``fn(suite, frame, fmt, out) -> str``, the report of suite kind ``kind`` in ``formats``."""
    register = RENDERERS.register(kind)

    def decorate(fn):
        fn.formats = tuple(formats)
        return register(fn)

    return decorate


def renderer_formats(renderer) -> tuple[str, ...]:
    """The report formats a registered renderer writes (a plug-in's that says nothing: Markdown and HTML)."""
    return tuple(getattr(renderer, "formats", RENDER_FORMATS))


@dataclass(frozen=True)
class ProtocolSpec:
    """A registered protocol: ``predict(task, train, evals, model_ref, pruner, recipe, seed, ctx)`` returns a
    ``benchmarks.protocols.base.ProtocolOutput`` (per-example predictions of each eval split, in order).

    ``version`` joins the cell key when it is not "1" (bump it when the protocol's numbers would change);
    ``trains``: a model is trained on the task (the embedding cache is then not used); ``pooling``: the
    protocol reads the suite's ``pooling`` field; ``fit_limit(recipe)``: how many train examples it reads
    (None: the whole train split); ``description``: one line for ``list protocols``.
    """

    name: str
    predict: Callable
    version: str = "1"
    trains: bool = False
    pooling: bool = True
    fit_limit: Callable | None = None
    description: str = ""

    def train_limit(self, recipe) -> int | None:
        """The number of train examples this protocol reads under ``recipe`` (None: all of them)."""
        if self.fit_limit is not None:
            return self.fit_limit(recipe)
        train_limit = getattr(recipe, "train_limit", None)
        if self.trains:
            return train_limit
        fit_limit = getattr(recipe, "fit_limit", None)  # the training-free protocols' own subset size
        return fit_limit if fit_limit is not None else train_limit


def protocol_spec(name: str) -> ProtocolSpec:
    """The registered protocol's spec (a plug-in that registered a bare function gets an open one)."""
    obj = PROTOCOLS.get(name)
    if isinstance(obj, ProtocolSpec):
        return obj
    doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
    return ProtocolSpec(name, obj, description=doc[0] if doc else "")


def register_protocol(name: str, *, version: str = "1", trains: bool = False, pooling: bool = True,
                      fit_limit: Callable | None = None):
    """Decorator: register ``fn(task, train, evals, model_ref, pruner, recipe, seed, ctx) -> ProtocolOutput``
    as protocol ``name`` (see ``ProtocolSpec``; its docstring's first line is the protocol's description)."""

    def decorator(fn: Callable) -> Callable:
        doc = (fn.__doc__ or "").strip().splitlines()
        PROTOCOLS.register(name, ProtocolSpec(name, fn, str(version), bool(trains), bool(pooling), fit_limit,
                                              doc[0] if doc else ""))
        return fn

    return decorator
