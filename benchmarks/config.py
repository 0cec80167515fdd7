"""Suites and cells as frozen dataclasses; a cell's identity is the hash of its canonical config."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from benchmarks.errors import UserError, did_you_mean

KEY_LENGTH = 20
FULL_SCALE = "full"  # the scale that applies no overrides
SEED_LIMIT = 2**32  # numpy and torch seeds must lie in [0, 2**32)


class SuiteLoader(yaml.SafeLoader):
    """PyYAML's safe loader, plus YAML 1.2 floats: ``3e-5`` is the number 3e-05, not the string '3e-5'.

    PyYAML follows YAML 1.1, whose floats need a dot; without this ``recipe.lr=3e-5`` and
    ``recipe.lr=3.0e-5`` would be different values (and different cell keys).
    """


SuiteLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),  # 1.1 already reads the forms with a dot
    list("-+0123456789"),
)


class Base60Int(int):
    """An int YAML 1.1 read from an unquoted ``N:M`` (base 60: 2:4 is 124); remembers the text for a hint."""

    yaml_text: str = ""


def _construct_int(loader: SuiteLoader, node: yaml.ScalarNode) -> int:
    value = yaml.SafeLoader.construct_yaml_int(loader, node)
    if ":" not in node.value:
        return value
    out = Base60Int(value)
    out.yaml_text = node.value
    return out


SuiteLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)

# A suite is a few hundred YAML nodes; aliases may repeat a node, but not expand to more than this
# (an 8-level alias bomb of 439 bytes expands to 10**8 nodes and hangs whatever walks it).
MAX_YAML_NODES = 100_000


class YamlTooLarge(ValueError):
    """YAML whose aliases expand beyond MAX_YAML_NODES nodes, or refer to themselves."""


def _expanded_size(node: yaml.Node, sizes: dict, open_nodes: set) -> int:
    """How many nodes ``node`` stands for once every alias is written out (memoised; cycles refused)."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        raise YamlTooLarge("an alias refers to a node that contains it")
    open_nodes.add(id(node))
    children = (node.value if isinstance(node, yaml.SequenceNode) else
                [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else [])
    total = 1
    for child in children:
        total += _expanded_size(child, sizes, open_nodes)
        if total > MAX_YAML_NODES:
            raise YamlTooLarge(f"its aliases expand to more than {MAX_YAML_NODES:,} values")
    open_nodes.discard(id(node))
    sizes[id(node)] = total
    return total


def parse_yaml(text: str):
    """Parse YAML text safely, with ``SuiteLoader``'s number rules (suite files and --set values alike).

    Raises YamlTooLarge before building anything when aliases would expand beyond MAX_YAML_NODES nodes.
    """
    loader = SuiteLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, {}, set())
        return loader.construct_document(node)
    finally:
        loader.dispose()


def canonical_json(config: dict) -> str:
    """Canonical text of a config: sorted keys, no whitespace, floats as Python writes them."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)


def config_key(config: dict) -> str:
    """The identity of a cell: a short sha256 of its canonical config."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:KEY_LENGTH]


@dataclass(frozen=True)
class Cell:
    """One grid cell: a canonical config (what is hashed) and a human label for progress output."""

    config: dict
    label: str
    # Facts about the cell that are not part of its identity (not hashed), e.g. the row's nominal
    # sparsity from the method's spec, for reports that bucket rows.
    info: dict = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        return config_key(self.config)


@dataclass(frozen=True)
class Suite:
    """A named grid: model x rows (methods, sparsities) x tasks x seeds x recipe, for one analysis kind."""

    name: str
    description: str = ""
    kind: str = "prune-finetune"
    model: str = "bert-base-uncased"
    model_revision: str | None = None
    scale: str = "full"
    seeds: tuple = (0,)
    tasks: tuple = ()
    rows: tuple = ()
    recipe: dict = field(default_factory=dict)
    scales: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)  # calibration data of methods that need it
    # How the pruned encoder is judged (docs/protocols.md): fine-tune it (the paper), use its embeddings
    # with no training (zeroshot), or fit a linear probe on them (probe); pooling turns token states
    # into one embedding for zeroshot/probe (mean: attention-masked mean, the model's own; cls: [CLS]).
    protocol: str = "finetune"
    pooling: str = "mean"

    def resolved_recipe(self) -> dict:
        """The recipe with the chosen scale's overrides applied ("full" is the recipe as written)."""
        if self.scale != FULL_SCALE and self.scale not in self.scales:
            raise UserError(
                f"suite {self.name!r} has no scale {self.scale!r}; choose one of "
                f"{', '.join(sorted({FULL_SCALE, *self.scales}))} (--set scale=...)"
            )
        return {**self.recipe, **self.scales.get(self.scale, {})}

    def scale_recipes(self) -> dict[str, dict]:
        """{scale: resolved recipe} for "full" and every scale the suite defines (all are checked up front)."""
        out = {FULL_SCALE: dict(self.recipe)}
        for name, overrides in self.scales.items():
            if not isinstance(overrides, dict):
                raise UserError(f"suite {self.name!r}: scales.{name} must be a mapping of recipe keys, got "
                                f"{overrides!r}; e.g. scales: {{{name}: {{epochs: 1}}}}")
            out[name] = {**self.recipe, **overrides}
        return out


SUITE_FIELDS = {f.name: f for f in dataclasses.fields(Suite)}
_FIELD_TYPES: dict[str, tuple] = {
    "name": (str,), "description": (str,), "kind": (str,), "model": (str,),
    "model_revision": (str, type(None)), "scale": (str,), "seeds": (list, tuple),
    "tasks": (list, tuple), "rows": (list, tuple), "recipe": (dict,), "scales": (dict,),
    "options": (dict,), "calibration": (dict,), "protocol": (str,), "pooling": (str,),
}


def _check_field(source: str, name: str, value: Any) -> Any:
    if name not in SUITE_FIELDS:
        hint = did_you_mean(name, SUITE_FIELDS) or f"known: {', '.join(SUITE_FIELDS)}"
        raise UserError(f"{source}: unknown suite field {name!r}; {hint}")
    if not isinstance(value, _FIELD_TYPES[name]):
        want = " or ".join(t.__name__ for t in _FIELD_TYPES[name])
        raise UserError(f"{source}: field {name!r} must be {want}, got {type(value).__name__} {value!r}; "
                        f"see suites/smoke.yaml for a suite with every field")
    if name == "seeds":
        _check_seeds(source, value)
    if name == "name":
        _check_name(source, value)
    if name == "model" and not value.strip():
        raise UserError(f"{source}: model is empty; name a model alias, a folder or a hub id "
                        f"(python -m benchmarks list models)")
    if isinstance(value, list):
        value = tuple(value)
    return value


MAX_NAME_LENGTH = 100  # a suite name becomes file names (grids/<name>.json, reports): keep it short


def _check_name(source: str, name: str) -> None:
    """A suite name is used as a file name: no path separators, no '..', no control characters, bounded length."""
    example = "e.g. --set name=my-suite"
    if not name.strip():
        raise UserError(f"{source}: the suite name is empty; give it one, {example}")
    if "/" in name or "\\" in name:
        raise UserError(f"{source}: suite name {name!r} contains a path separator; the name becomes a file name, "
                        f"so use letters, digits, '-', '_' or '.', {example}")
    if ".." in name:
        raise UserError(f"{source}: suite name {name!r} contains '..'; the name becomes a file name, {example}")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UserError(f"{source}: suite name {name!r} contains a control character; {example}")
    if len(name) > MAX_NAME_LENGTH:
        raise UserError(f"{source}: suite name is {len(name)} characters long; the name becomes a file name, so "
                        f"keep it to {MAX_NAME_LENGTH} or fewer, {example}")


def _check_seeds(source: str, value: Any) -> None:
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        raise UserError(f"{source}: seeds must be a list of integers, got {value!r}; e.g. seeds: [0, 1, 2]")
    if not value:
        raise UserError(f"{source}: seeds is empty, so nothing would run; give at least one, e.g. seeds: [0]")
    bad = [s for s in value if not 0 <= s < SEED_LIMIT]
    if bad:
        raise UserError(f"{source}: seed {bad[0]} is outside [0, 2**32); use a seed such as 0, 1, 2")


def suite_from_mapping(data: Any, source: str) -> Suite:
    """Validate a parsed YAML mapping and build a Suite; errors name ``source``."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: a suite file must be a YAML mapping, got {type(data).__name__}")
    if "name" not in data:
        raise UserError(f"{source}: suite has no 'name' field; add 'name: my-suite'")
    values = {k: _check_field(source, k, v) for k, v in data.items()}
    suite = Suite(**values)
    if suite.kind != "prune-finetune" and (suite.protocol, suite.pooling) != ("finetune", "mean"):
        raise UserError(f"{source}: protocol and pooling apply to prune-finetune suites; suite {suite.name!r} "
                        f"is kind {suite.kind!r}, drop --set protocol / pooling")
    return suite


def builtin_suite_names() -> list[str]:
    """Names of the suites shipped in the ``suites`` package."""
    return sorted(p.name[:-5] for p in resources.files("suites").iterdir() if p.name.endswith(".yaml"))


def load_suite(name: str | None = None, path: Path | str | None = None) -> Suite:
    """Load a suite by built-in name or from a YAML file."""
    if path is not None:
        path = Path(path)
        text, source = _read_suite_file(path), str(path)
    else:
        names = builtin_suite_names()
        if name not in names:
            hint = did_you_mean(name or "", names, n=3, cutoff=0.5) or f"known: {', '.join(names)}"
            raise UserError(f"unknown suite {name!r}; {hint}")
        text, source = (resources.files("suites") / f"{name}.yaml").read_text(), f"suites/{name}.yaml"
    try:
        data = parse_yaml(text)
    except YamlTooLarge as exc:
        raise UserError(f"{source}: YAML too large to load ({exc}); write the values out instead of "
                        f"nesting aliases") from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise UserError(f"{source}: invalid YAML ({first}); fix the file's syntax") from None
    return suite_from_mapping(data, source)


def _read_suite_file(path: Path) -> str:
    """The text of a suite file; a folder, a missing or unreadable file, or bytes that are not UTF-8 are bad input."""
    if path.is_dir():
        raise UserError(f"--suite-file {path} is a folder; pass a suite YAML file (e.g. {path}/my-suite.yaml)")
    if not path.is_file():
        raise UserError(f"suite file {path} does not exist; pass an existing YAML file to --suite-file")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); save the suite file as UTF-8") from None
    except OSError as exc:
        raise UserError(f"suite file {path} cannot be read ({exc.strerror or exc}); check its permissions") from None


def apply_overrides(suite: Suite, overrides: list[str]) -> Suite:
    """Apply ``--set KEY=VALUE`` overrides (dotted keys reach into recipe/options/scales)."""
    data = dataclasses.asdict(suite)
    explicit: set = set()  # recipe keys the overrides set
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. --set seeds=[0,1]")
        key, raw = item.split("=", 1)
        try:
            value = parse_yaml(raw) if raw != "" else ""
        except YamlTooLarge as exc:
            raise UserError(f"--set {key.strip()}=...: YAML too large to load ({exc}); write the values out "
                            f"instead of nesting aliases") from None
        except yaml.YAMLError:
            raise UserError(f"--set {item!r}: value {raw!r} is not valid YAML; check its brackets and quotes, "
                            f"e.g. --set 'rows=[dense]'") from None
        parts = key.strip().split(".")
        if parts[0] not in SUITE_FIELDS:
            _check_field("--set", parts[0], None)
        target = data
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {} if part not in target or target[part] is None else target[part]
                if not isinstance(target[part], dict):
                    raise UserError(f"--set {item!r}: {part!r} is not a mapping")
            target = target[part]
        target[parts[-1]] = value
        if parts[0] == "recipe":
            _recipe_wins_over_scales(data, parts[1:], value)
            explicit.update(parts[1:2] or (value if isinstance(value, dict) else {}))
    suite = suite_from_mapping(data, "--set")
    _check_read_by_protocol(suite, explicit)
    return suite


def _check_read_by_protocol(suite: Suite, explicit: set) -> None:
    """A recipe key set with --set that the suite's protocol never reads would change every cell key and no
    number (e.g. lr under zeroshot): bad input. Keys the suite file shares between protocols are kept."""
    from benchmarks.recipes import unread_keys

    unread = unread_keys(sorted(explicit), suite.protocol)
    if unread:
        raise UserError(f"--set recipe.{unread[0]}: protocol {suite.protocol!r} never reads it, so it would change "
                        f"every cell key and no number; drop it, or set the protocol that reads it "
                        f"(docs/protocols.md)")


def _recipe_wins_over_scales(data: dict, path: list[str], value: Any) -> None:
    """An explicit ``--set recipe.X=v`` (or ``--set recipe={X: v}``) wins over every scale that sets X.

    Precedence (docs/harness.md): recipe < scales.<scale> < --set recipe.X; ``--set scales.S.X`` sets one
    scale only. So X is written into each scale that names it, and the cell key follows the value used.
    """
    given = value if not path and isinstance(value, dict) else ({path[0]: value} if len(path) == 1 else {})
    for overrides in (data.get("scales") or {}).values():
        if isinstance(overrides, dict):
            for key in set(given) & set(overrides):
                overrides[key] = given[key]
