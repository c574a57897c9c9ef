"""
Experiment grids: a grid file (``workflows/grids/*.json``) names a bundle, its variants (name -> bundle
overrides) and its presets (which variants, seeds and folds, with which training budget). This module reads
grid files, plans the jobs of a preset, and names the MLflow store and experiment they log to.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["GRID_KEYS", "OPTIONAL_GRID_KEYS", "PRESET_KEYS", "ROOT", "TAG", "Job", "client_and_experiment",
           "experiment_name", "load_grid", "plan", "preset_variants", "tracking_uri"]

ROOT = Path(__file__).resolve().parents[1]  # grids name bundles and data sets from the repository root
TAG = "srb."  # the prefix of the tags a grid puts on each MLflow run: srb.variant, srb.seed, srb.fold, ...


@dataclass
class Job:
    """One training: a variant at one seed and fold, with every override the bundle gets."""

    variant: str
    seed: int
    fold: int | None
    overrides: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)  # the command line's --set, recorded as a tag

    @property
    def slug(self) -> str:
        """The job as a file and run name: 'U-Net + 4 SRB_F' at seed 0, fold 1 is 'U_Net_plus_4_SRB_F__s0_f1'."""
        name = re.sub(r"[^A-Za-z0-9]+", "_", self.variant.replace("*", "star").replace("+", "plus")).strip("_")
        return f"{name}__s{self.seed}" + ("" if self.fold is None else f"_f{self.fold}")


# The keys of a grid file and of its presets; any other key is refused (a misspelt "seed" would otherwise run the
# default seed 0 only), except those starting with "_", which are comments ("_doc_").
GRID_KEYS = ("name", "bundle", "configs", "run_name_ids", "variants", "presets", "key_metric", "metrics", "baseline")
OPTIONAL_GRID_KEYS = ("baselines", "overrides", "test", "test_metrics")
PRESET_KEYS = ("variants", "seeds", "folds", "overrides", "experiment", "comparisons")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys: a second variant of the same name would replace the first unseen.
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"repeats the key(s) {repeated} in one object (JSON keeps only the last of them)")
    return dict(pairs)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _repeated(values: Sequence[Any]) -> list[Any]:
    return [v for i, v in enumerate(values) if v in values[:i]]


def _is_names(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)


class _Checker:
    """The checks of one grid file; each failure is a ValueError naming the file, the key and the value."""

    def __init__(self, grid: dict[str, Any], path: str) -> None:
        self.grid, self.path = grid, path

    def fail(self, where: str, problem: str) -> ValueError:
        return ValueError(f"grid {self.path}: {where} {problem}.")

    def variant(self, where: str, name: Any) -> None:
        if name not in self.grid["variants"]:
            known = list(self.grid["variants"])
            raise self.fail(where, f"names the unknown variant {name!r}; the grid's variants are {known}")

    def keys(self, where: str, spec: Mapping[str, Any], allowed: Sequence[str]) -> None:
        unknown = [k for k in spec if not k.startswith("_") and k not in allowed]
        if unknown:
            raise self.fail(where, f"has the unknown key(s) {unknown}; expected keys among {list(allowed)} (keys "
                            "starting with '_' are comments)")

    def check(self) -> None:
        grid = self.grid
        missing = [k for k in GRID_KEYS if k not in grid]
        if missing:
            raise ValueError(f"grid {self.path} lacks the key(s) {missing}; a grid has the keys {list(GRID_KEYS)}.")
        self.keys("the grid", grid, GRID_KEYS + OPTIONAL_GRID_KEYS)
        for key in ("name", "bundle", "key_metric", "baseline"):
            if not isinstance(grid[key], str) or not grid[key]:
                raise self.fail(repr(key), f"must be a non-empty string, got {grid[key]!r}")
        for key in ("configs", "run_name_ids", "metrics", "test_metrics"):
            if key in grid and not _is_names(grid[key]):
                raise self.fail(repr(key), f"must be a non-empty list of strings, got {grid[key]!r}")
        if grid["key_metric"] not in grid["metrics"]:
            raise self.fail("'key_metric'", f"{grid['key_metric']!r} is none of the 'metrics' {grid['metrics']}")
        for key, what in (("variants", "variant name -> bundle overrides"), ("presets", "preset name -> preset")):
            if not isinstance(grid[key], dict) or not grid[key]:
                raise self.fail(repr(key), f"must be a non-empty object of {what}, got {grid[key]!r}")
        if not isinstance(grid.get("overrides", {}), dict):
            raise self.fail("'overrides'", f"must be an object of bundle overrides, got {grid['overrides']!r}")
        slugs: dict[str, str] = {}
        for name, overrides in grid["variants"].items():
            if not isinstance(overrides, dict):
                raise self.fail(f"variant {name!r}", f"must be an object of bundle overrides, got {overrides!r}")
            slug = Job(name, 0, None, {}).slug.removesuffix("__s0")
            if slug in slugs:
                # Runs and their folders are named by the slug: the two variants' runs would be taken for each other.
                raise self.fail(f"variants {slugs[slug]!r} and {name!r}", f"have the same run name {slug!r} (the "
                                "letters and digits of the name), so their runs would be mixed up: rename one")
            slugs[slug] = name
        self.variant("'baseline'", grid["baseline"])
        baselines = grid.get("baselines", {})
        if not isinstance(baselines, dict):
            raise self.fail("'baselines'", f"must be an object of variant -> its baseline variant, got {baselines!r}")
        for name, reference in baselines.items():
            self.variant("'baselines'", name)
            self.variant(f"'baselines' of {name!r}", reference)
            if name == reference:
                raise self.fail(f"'baselines' of {name!r}", "pairs the variant with itself")
        test = grid.get("test", {"data": "", "transform": ""})
        if not isinstance(test, dict) or not all(isinstance(test.get(k), str) for k in ("data", "transform")):
            raise self.fail("'test'", f"must be an object with the strings 'data' and 'transform', got {test!r}")
        for preset, spec in grid["presets"].items():
            self.preset(preset, spec)

    def preset(self, preset: str, spec: Any) -> None:
        grid, where = self.grid, f"preset {preset!r}"
        if not isinstance(spec, dict):
            raise self.fail(where, f"must be an object with keys among {list(PRESET_KEYS)}, got {spec!r}")
        self.keys(where, spec, PRESET_KEYS)
        names = spec.get("variants", "*")
        if names != "*":
            if not _is_names(names):
                raise self.fail(f"{where} 'variants'", f"must be '*' (every variant) or a non-empty list of variant "
                                f"names, got {names!r}")
            for name in names:
                self.variant(f"{where} 'variants'", name)
            if _repeated(names):
                raise self.fail(f"{where} 'variants'", f"lists {_repeated(names)} more than once")
        for key in ("seeds", "folds"):
            values = spec.get(key)
            if values is None and (key == "folds" or key not in spec):
                continue  # folds null: no cross-validation; no seeds: seed 0
            if not isinstance(values, list) or not values or not all(_is_int(v) and v >= 0 for v in values):
                expected = "a non-empty list of integers >= 0"
                expected += ", or null (one split, no folds)" if key == "folds" else ""
                raise self.fail(f"{where} {key!r}", f"must be {expected}, got {values!r}")
            if _repeated(values):
                raise self.fail(f"{where} {key!r}", f"lists {_repeated(values)} more than once, got {values!r}")
        if not isinstance(spec.get("overrides", {}), dict):
            raise self.fail(f"{where} 'overrides'", f"must be an object of bundle overrides, got {spec['overrides']!r}")
        num_folds = {**grid.get("overrides", {}), **spec.get("overrides", {})}.get("num_folds")
        folds = spec.get("folds") or []
        if _is_int(num_folds) and folds and max(folds) >= num_folds:
            raise self.fail(f"{where} 'folds'", f"{folds} go beyond its num_folds={num_folds} (folds 0 .. "
                            f"{num_folds - 1})")
        shared = spec.get("experiment")
        if shared is not None:
            if shared not in grid["presets"]:
                raise self.fail(f"{where} 'experiment'", f"names the unknown preset {shared!r}; the grid's presets are "
                                f"{list(grid['presets'])}")
            if spec.get("overrides") != grid["presets"][shared].get("overrides"):
                raise self.fail(where, f"adds runs to the experiment of preset {shared!r}, so it needs the same "
                                "overrides (the same training budget)")
        self.comparisons(preset, spec)

    def comparisons(self, preset: str, spec: Mapping[str, Any]) -> None:
        if "comparisons" not in spec:
            return
        where = f"preset {preset!r} 'comparisons'"
        pairs, trained = spec["comparisons"], preset_variants(self.grid, preset)
        if not isinstance(pairs, list) or not pairs:
            raise self.fail(where, f"must be a non-empty list of [variant, reference] pairs, got {pairs!r}")
        for pair in pairs:
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair)):
                raise self.fail(where, f"must be [variant, reference] pairs of names, got {pair!r}")
            for name in pair:
                self.variant(where, name)
                if name not in trained:
                    # The comparison would find no runs of it in this preset's experiment.
                    raise self.fail(where, f"names {name!r}, which the preset does not train; it trains {trained}")
            if pair[0] == pair[1]:
                raise self.fail(where, f"compares {pair[0]!r} with itself")


def load_grid(path: str | os.PathLike) -> dict[str, Any]:
    """
    Read a grid file and check it: its keys (:data:`GRID_KEYS`, :data:`OPTIONAL_GRID_KEYS`, each preset's
    :data:`PRESET_KEYS`) and their types, that the baselines, the presets' variants and comparisons name only
    its variants, that no key repeats, that no two variants share a run name, and that a preset sharing
    another's MLflow experiment has its overrides.

    Args:
        path: the grid file, e.g. ``workflows/grids/isic_table1.json``.

    Raises:
        ValueError: naming the file, the key and the value at fault (and the valid names, for an unknown one).
    """
    path = Path(path)
    if not path.is_file():
        found = sorted(p.name for p in (ROOT / "workflows" / "grids").glob("*.json"))
        raise ValueError(f"grid file {path} does not exist; the grids in workflows/grids/ are {found}.")
    try:
        grid = json.loads(path.read_text(), object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        raise ValueError(f"grid {path} is not valid JSON: {e}.") from e
    except ValueError as e:
        raise ValueError(f"grid {path} {e}.") from e
    if not isinstance(grid, dict):
        raise ValueError(f"grid {path} must hold one JSON object with the keys {list(GRID_KEYS)}, got {grid!r:.80}.")
    _Checker(grid, str(path)).check()
    return grid


def preset_variants(grid: Mapping[str, Any], preset: str) -> list[str]:
    """The variants a preset trains: its 'variants' list, or every variant of the grid ('*' or none given)."""
    names = grid["presets"][preset].get("variants", "*")
    return list(grid["variants"]) if names == "*" else list(names)


def plan(
    grid: Mapping[str, Any],
    preset: str,
    variants: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    folds: Sequence[int] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> list[Job]:
    """
    The jobs of a preset, seed-major (every variant of seed 0, then seed 1, ...), so that a grid stopped
    early still holds paired comparisons. Override precedence: grid, preset, variant, ``extra``
    (the command line's ``--set``), then the seed and fold of the job.
    """
    if preset not in grid["presets"]:
        raise ValueError(f"preset must be one of {sorted(grid['presets'])} of grid {grid['name']!r}, got {preset!r}.")
    spec = grid["presets"][preset]
    names = list(variants) if variants else preset_variants(grid, preset)
    unknown = [v for v in names if v not in grid["variants"]]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; the grid has {list(grid['variants'])}.")
    seed_list = list(seeds) if seeds is not None else list(spec.get("seeds", [0]))
    fold_list: list[int | None] = list(folds) if folds is not None else list(spec.get("folds") or [None])
    jobs = []
    for seed in seed_list:
        for fold in fold_list:
            for name in names:
                overrides = {**grid.get("overrides", {}), **spec.get("overrides", {}), **grid["variants"][name]}
                overrides.update(extra or {})
                overrides["seed"] = seed
                overrides["fold"] = fold
                jobs.append(Job(name, seed, fold, overrides, dict(extra or {})))
    return jobs


def tracking_uri(out: Path) -> str:
    """The SQLite file of an ``--out`` folder, ``sqlite:///<out>/mlflow.db``: the experiment's one store."""
    return f"sqlite:///{(out / 'mlflow.db').resolve()}"


def experiment_name(grid: Mapping[str, Any], preset: str) -> str:
    """``<grid>__<preset>``; a preset with ``"experiment": "<other preset>"`` adds its runs to that one's."""
    return f"{grid['name']}__{grid['presets'][preset].get('experiment', preset)}"


def client_and_experiment(uri: str, name: str, create: bool, artifact_location: str | None = None) -> tuple[Any, Any]:
    """
    An ``mlflow.MlflowClient`` of the store ``uri`` and its experiment ``name`` (``None`` when there is none).

    Args:
        uri: an MLflow tracking URI (``sqlite:///...``, ``http://...``).
        name: the experiment, see :func:`experiment_name`.
        create: create the experiment when the store lacks it.
        artifact_location: where a created experiment keeps its artifacts; ``None``: the store's default.
    """
    import mlflow

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None and create:
        client.create_experiment(name, artifact_location=artifact_location)
        experiment = client.get_experiment_by_name(name)
    return client, experiment

