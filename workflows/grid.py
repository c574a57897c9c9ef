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

__all__ = ["ROOT", "TAG", "Job", "client_and_experiment", "experiment_name", "load_grid", "plan", "preset_variants",
           "tracking_uri"]

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


def load_grid(path: str | os.PathLike) -> dict[str, Any]:
    """Read a grid file and check that its presets name only its variants."""
    grid = json.loads(Path(path).read_text())
    # run_name_ids: the bundle ids of the run name, which every job sets to its slug so that its run is found
    required = ("name", "bundle", "configs", "run_name_ids", "variants", "presets", "key_metric", "metrics", "baseline")
    for key in required:
        if key not in grid:
            raise ValueError(f"grid {path} lacks the key {key!r}.")
    for preset, spec in grid["presets"].items():
        unknown = [v for v in preset_variants(grid, preset) if v not in grid["variants"]]
        if unknown:
            raise ValueError(f"preset {preset!r} of grid {path} names unknown variants {unknown}.")
        shared = spec.get("experiment")
        if shared is not None and spec.get("overrides") != grid["presets"][shared].get("overrides"):
            raise ValueError(
                f"preset {preset!r} of grid {path} adds runs to preset {shared!r}'s experiment, so it needs the same "
                "overrides (the same training budget)."
            )
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
        raise ValueError(f"preset must be one of {sorted(grid['presets'])}, got {preset!r}.")
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

