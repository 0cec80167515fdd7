"""MNIST suite kinds: ``mnist-correlations`` (Tables 1, 2, Fig 2), ``mnist-recipes`` (the same per recipe,
side by side) and ``mnist-init`` (Table 3)."""

from __future__ import annotations

from benchmarks.config import FULL_SCALE, Cell, Suite
from benchmarks.errors import UserError
from benchmarks.kinds.base import CellOutcome, RunContext
from benchmarks.registry import register_kind

OPTION_KEYS = {"models", "prune", "train_limit", "factors", "controlled"}
# Recipe fields that change how fast a cell runs, never its numbers (models trained together, torch threads):
# run settings, set in a suite's recipe like the rest, but kept out of the cell key (docs/harness.md: a key
# never holds worker counts, so the same cell run anywhere is found done) and written into the record's notes.
RUN_SETTINGS = ("chunk", "threads")


def _recipe(base: dict, overrides: dict, source: str):
    from benchmarks.mnist.train import Recipe

    return Recipe.from_mapping({**base, **overrides}, source)


def _identity(recipe) -> dict:
    """The recipe as it goes into a cell's config (hashed into its key): everything but the run settings."""
    return {k: v for k, v in recipe.as_dict().items() if k not in RUN_SETTINGS}


def _run_settings(recipe) -> dict:
    """The recipe's run settings (travel in ``Cell.info``, not hashed; the record keeps them in its notes)."""
    return {k: getattr(recipe, k) for k in RUN_SETTINGS}


def _cell_recipe(cell: Cell):
    """The recipe a cell trains with: its config's recipe plus the run settings it was expanded with."""
    return _recipe(cell.config["recipe"], cell.info.get("run_settings", {}), "cell")


def _rows(suite: Suite) -> list[tuple[str, dict]]:
    """(label, recipe overrides) per row; a suite without rows has one row: its recipe."""
    if not suite.rows:
        return [("default", {})]
    out = []
    for item in suite.rows:
        if not isinstance(item, dict) or "label" not in item:
            raise UserError(f"suite {suite.name!r}: row {item!r} must be a mapping with a 'label' and recipe overrides")
        item = dict(item)
        out.append((str(item.pop("label")), item))
    return out


def _scale_recipes(suite: Suite) -> list[tuple[str, dict]]:
    """(where, resolved recipe) for every scale of the suite: a bad key in any scale is bad input up front."""
    suite.resolved_recipe()  # an unknown chosen scale first
    return [(f"suite {suite.name!r}" + ("" if scale == FULL_SCALE else f" scale {scale!r}"), recipe)
            for scale, recipe in suite.scale_recipes().items()]


def _check_options(suite: Suite) -> None:
    extra = set(suite.options) - OPTION_KEYS
    if extra:
        raise UserError(f"suite {suite.name!r}: unknown option(s) {', '.join(sorted(extra))}; "
                        f"known: {', '.join(sorted(OPTION_KEYS))}")
    models = suite.options.get("models", 100)
    if not isinstance(models, int) or models < 1:
        raise UserError(f"suite {suite.name!r}: options.models must be a positive integer, got {models!r}")


@register_kind("mnist-correlations")
class MnistCorrelations:
    """Train an ensemble of LeNet-300-100 models, prune layer-wise by magnitude, Tables 1 and 2 (paper §4.1)."""

    kind = "mnist-correlations"

    def validate(self, suite: Suite) -> None:
        from benchmarks.mnist.statistics import check_rates

        _check_options(suite)
        check_rates(suite.options.get("prune", {}))
        suite.resolved_recipe()
        for source, recipe in _scale_recipes(suite):
            for label, overrides in _rows(suite):
                _recipe(recipe, overrides, f"{source} row {label!r}")

    def cells(self, suite: Suite) -> list[Cell]:
        from benchmarks.mnist.statistics import check_rates

        self.validate(suite)
        base = suite.resolved_recipe()
        cells = []
        for label, overrides in _rows(suite):
            recipe = _recipe(base, overrides, suite.name)
            for seed in suite.seeds:
                config = {"kind": self.kind, "label": label, "recipe": _identity(recipe),
                          "models": suite.options.get("models", 100),
                          "prune": check_rates(suite.options.get("prune", {})),
                          "train_limit": suite.options.get("train_limit"), "seed": seed, "scale": suite.scale}
                cells.append(Cell(config, f"{label} seed={seed}", {"run_settings": _run_settings(recipe)}))
        return cells

    def run(self, cell: Cell, ctx: RunContext) -> CellOutcome:
        from benchmarks.mnist.experiments import run_correlations

        cfg = cell.config
        recipe = _cell_recipe(cell)
        out = run_correlations(recipe, cfg["models"], cfg["seed"], cfg["prune"], ctx.data_dir, cfg["train_limit"],
                               _device(ctx))
        metrics = {f"t1.{k}": v for k, v in out["table1"].items()}
        for layer in ("hidden1", "hidden2"):
            metrics.update({f"t2.{layer}.{k}": v for k, v in out["table2"][layer].items()})
        metrics.update({"accuracy_dense": out["accuracy_dense"], "accuracy_pruned": out["accuracy_pruned"],
                        "dead_nodes_hidden1_mean": out["table2_mean"]["hidden1"]["dead_nodes"],
                        "train_wall_s": out["train_timing"]["wall_s"], "train_cpu_s": out["train_timing"]["cpu_s"]})
        artifacts = {k: out[k] for k in ("table1", "table1_std", "table1_per_model", "table2", "table2_mean",
                                         "nodes_model0", "dead_nodes_per_model", "seeds")}
        notes = {"timing": out["timing"], "train_timing": out["train_timing"], "threads": _threads_used(recipe),
                 "device": str(_device(ctx)), "run_settings": _run_settings(recipe)}
        return CellOutcome(metrics, sparsity={"per_layer_after": cfg["prune"]}, data=out["sha256"], notes=notes,
                           artifacts=artifacts)


@register_kind("mnist-recipes")
class MnistRecipes(MnistCorrelations):
    """Tables 1 and 2 for several training recipes side by side, with the distance to the paper's values."""

    kind = "mnist-recipes"


@register_kind("mnist-init")
class MnistInit:
    """Table 3: correlated initialization with factor f, test accuracy after a quarter epoch, one-sided t-tests."""

    def validate(self, suite: Suite) -> None:
        _check_options(suite)
        for label, overrides in _rows(suite):
            overrides = dict(overrides)
            factors = overrides.pop("factors", suite.options.get("factors"))
            overrides.pop("controlled", None)
            if not factors or not all(isinstance(f, (int, float)) and f >= 1.0 for f in factors) or 1.0 not in factors:
                raise UserError(f"suite {suite.name!r} row {label!r}: factors must be numbers >= 1.0 including 1.0")
            for source, recipe in _scale_recipes(suite):
                _recipe(recipe, overrides, f"{source} row {label!r}")

    def cells(self, suite: Suite) -> list[Cell]:
        self.validate(suite)
        cells = []
        for label, overrides in _rows(suite):
            overrides = dict(overrides)
            factors = [float(f) for f in overrides.pop("factors", suite.options.get("factors"))]
            controlled = bool(overrides.pop("controlled", suite.options.get("controlled", False)))
            recipe = _recipe(suite.resolved_recipe(), overrides, suite.name)
            for seed in suite.seeds:
                config = {"kind": "mnist-init", "label": label, "recipe": _identity(recipe), "factors": factors,
                          "controlled": controlled, "models": suite.options.get("models", 50), "seed": seed,
                          "scale": suite.scale}
                cells.append(Cell(config, f"{label} seed={seed}", {"run_settings": _run_settings(recipe)}))
        return cells

    def run(self, cell: Cell, ctx: RunContext) -> CellOutcome:
        from benchmarks.mnist.experiments import run_init

        cfg = cell.config
        recipe = _cell_recipe(cell)
        out = run_init(recipe, cfg["factors"], cfg["models"], cfg["seed"], cfg["controlled"], ctx.data_dir,
                       _device(ctx))
        metrics = {f"acc.f{row['f']:g}": row["mean"] for row in out["rows"]}
        metrics.update({f"p.f{row['f']:g}": row["p_value"] for row in out["rows"] if "p_value" in row})
        notes = {"timing": out["timing"], "threads": _threads_used(recipe), "device": str(_device(ctx)),
                 "run_settings": _run_settings(recipe)}
        return CellOutcome(metrics, data=out["sha256"], notes=notes,
                           artifacts={"rows": out["rows"], "accuracy": out["accuracy"]})


def _device(ctx: RunContext):
    """Train where accelerate put this process (cuda on a GPU machine, else cpu); numbers differ by float32
    kernel rounding only, and the record's notes say which device ran."""
    accelerator = getattr(ctx, "accelerator", None)
    return getattr(accelerator, "device", None) or "cpu"


def _threads_used(recipe) -> int:
    """CPU threads the training ran with: the recipe's, or torch's default when it leaves them at 0."""
    import torch

    return recipe.threads or torch.get_num_threads()
