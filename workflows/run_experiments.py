"""
Run one of the paper's experiment grids through a bundle, log every run to MLflow, and report it.

A grid (``workflows/grids/*.json``) names a bundle, its variants (name -> bundle overrides) and its
presets (which variants, seeds and folds, with which training budget). This script trains every
(variant, seed, fold) of a preset in-process with :class:`monai.bundle.ConfigWorkflow`, all into one
SQLite MLflow store, tags each run with ``srb.variant`` / ``srb.seed`` / ``srb.fold``, then reads the
runs back from MLflow into a markdown table (mean +- std over seeds) and PNG figures.

    python workflows/run_experiments.py --grid workflows/grids/isic_table1.json --preset cpu \
        --out runs/experiments/isic_cpu
    python workflows/run_experiments.py --grid ... --preset cpu --out ... --report-only
    python workflows/run_experiments.py --grid ... --preset cpu_grid --out ... --workers 2 --threads 1

``--workers N`` trains in N processes at once (one core each suits these small networks best); each logs to
its own store under ``<out>/workers`` and the report reads them all.

Aggregation: with folds, a seed's score is the mean over its folds (a cross-validated score), then
mean +- std over seeds; without folds each seed is one run. Each metric is read at the last epoch
(``last``) and at the epoch of the best key metric (``best``, the epoch ``model.pt`` holds; optimistic,
because that epoch is chosen on the same validation images). The difference to the baseline is paired
(same seed, same folds); it counts as inside the noise unless its mean is at least twice its standard
error over seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# Grid overrides reach workflows/ helpers (srb_tuning) by module name.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
TAG = "srb."


# ---------------------------------------------------------------------------------------------------------
# Grids
# ---------------------------------------------------------------------------------------------------------


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
        name = re.sub(r"[^A-Za-z0-9]+", "_", self.variant.replace("*", "star").replace("+", "plus")).strip("_")
        return f"{name}__s{self.seed}" + ("" if self.fold is None else f"_f{self.fold}")


def load_grid(path: str | os.PathLike) -> dict[str, Any]:
    """Read a grid file and check that its presets name only its variants."""
    grid = json.loads(Path(path).read_text())
    for key in ("name", "bundle", "configs", "variants", "presets", "key_metric", "metrics", "baseline"):
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


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs; the value is JSON when it parses (``null``, ``64``, ``["before_up4"]``), else a str."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set takes key=value, got {item!r}.")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


# ---------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------


def tracking_uri(out: Path) -> str:
    return f"sqlite:///{(out / 'mlflow.db').resolve()}"


def experiment_name(grid: Mapping[str, Any], preset: str) -> str:
    """``<grid>__<preset>``; a preset with ``"experiment": "<other preset>"`` adds its runs to that one's."""
    return f"{grid['name']}__{grid['presets'][preset].get('experiment', preset)}"


def _client_and_experiment(out: Path, name: str, create: bool) -> tuple[Any, Any]:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri(out))
    experiment = client.get_experiment_by_name(name)
    if experiment is None and create:
        # Artifacts beside the store, not in ./mlruns of whatever folder the command ran from.
        client.create_experiment(name, artifact_location=(out / "mlartifacts").resolve().as_uri())
        experiment = client.get_experiment_by_name(name)
    return client, experiment


def _run_ids(client: Any, experiment_id: str) -> set[str]:
    return {r.info.run_id for r in client.search_runs([experiment_id], max_results=50000)}


def _finished_jobs(client: Any, experiment_id: str) -> set[tuple[str, int, int | None]]:
    done = set()
    for r in client.search_runs([experiment_id], filter_string="attributes.status = 'FINISHED'", max_results=50000):
        tags = r.data.tags
        if TAG + "variant" in tags:
            fold = tags.get(TAG + "fold", "")
            done.add((tags[TAG + "variant"], int(tags[TAG + "seed"]), int(fold) if fold not in ("", "None") else None))
    return done


def stores(out: Path) -> list[Path]:
    """
    The MLflow stores that exist in a ``--out`` folder: its own and those of its ``--workers``
    (``workers/<k>``). Only existing ones: opening a missing SQLite store creates and migrates it.
    """
    return sorted(p.parent for p in [out / "mlflow.db", *(out / "workers").glob("*/mlflow.db")] if p.is_file())


def run_job(
    grid: Mapping[str, Any], job: Job, out: Path, experiment: str, test_eval: bool, store: Path | None = None
) -> dict[str, float]:
    """
    Train one job in this process; returns the test metrics when the grid defines a test set. The run folder is
    ``<out>/runs/<job>``; the run is logged to the MLflow store in ``store`` (default ``out``).
    """
    from monai.bundle import ConfigWorkflow

    bundle = ROOT / grid["bundle"]
    run_dir = out / "runs" / job.slug
    overrides = dict(job.overrides)
    if isinstance(overrides.get("dataset_dir"), str) and not Path(overrides["dataset_dir"]).is_absolute():
        overrides["dataset_dir"] = str((ROOT / overrides["dataset_dir"]).resolve())  # grids name paths from the repo root
    overrides.update(
        output_dir=str(run_dir), tracking_uri=tracking_uri(store or out), experiment_name=experiment, bundle_root=str(bundle)
    )
    for run_name_id in grid.get("run_name_ids", []):
        overrides[run_name_id] = job.slug
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "job.json").write_text(json.dumps({"variant": job.variant, "seed": job.seed, "fold": job.fold,
                                                  "overrides": overrides}, indent=1))
    workflow = ConfigWorkflow(
        config_file=[str(bundle / c) for c in grid["configs"]], logging_file=False, workflow_type=None, **overrides
    )
    workflow.initialize()
    try:
        workflow.run()
    finally:
        workflow.finalize()
    test = {}
    if test_eval and "test" in grid:
        test = evaluate_test(workflow.parser, grid["test"], run_dir)
    for stale in (run_dir / "models").glob("checkpoint_*.pt"):
        stale.unlink()  # resume states; model.pt (best epoch) stays for the figures
    shutil.rmtree(run_dir / "synthetic_data", ignore_errors=True)  # rebuilt from the seed when needed
    return test


def evaluate_test(parser: Any, spec: Mapping[str, Any], run_dir: Path) -> dict[str, float]:
    """
    Multi-class test-set scores of the best-epoch ``model.pt``: macro one-vs-rest AUC (MedMNIST's AUC)
    and accuracy. ``spec``: ``{"data": expression of the test list, "transform": id of the transforms}``.
    """
    import torch
    from monai.data import DataLoader, Dataset
    from monai.metrics import compute_roc_auc

    network = parser.get_parsed_content("network")
    device = next(network.parameters()).device
    state = torch.load(run_dir / "models" / "model.pt", map_location=device, weights_only=True)
    network.load_state_dict(state)
    network.eval()
    parser["srb_test_data"] = spec["data"]  # an expression of the bundle's ids, e.g. "$@datalists['test']"
    parser.parse()
    data = parser.get_parsed_content("srb_test_data")
    transform = parser.get_parsed_content(spec["transform"])
    loader = DataLoader(Dataset(data, transform), batch_size=64, shuffle=False, num_workers=0)
    preds, labels = [], []
    with torch.no_grad():
        for batch in loader:
            preds.append(torch.softmax(network(batch["image"].to(device)).float(), dim=1).cpu())
            labels.append(torch.as_tensor(batch["label"]).float())
    y_pred, y = torch.cat(preds), torch.cat(labels)
    # Per class, then the mean over the classes the test set holds (a class without positives has no AUC).
    aucs = compute_roc_auc(y_pred, y, average="none")
    return {
        "test_auc": float(np.nanmean(aucs)),
        "test_acc": float((y_pred.argmax(1) == y.argmax(1)).float().mean()),
    }


def finished_jobs(grid: Mapping[str, Any], preset: str, out: Path) -> set[tuple[str, int, int | None]]:
    """(variant, seed, fold) of every FINISHED run of the preset's experiment in ``out``'s stores."""
    done: set[tuple[str, int, int | None]] = set()
    for store in stores(out):
        client, experiment = _client_and_experiment(store, experiment_name(grid, preset), create=False)
        if experiment is not None:
            done |= _finished_jobs(client, experiment.experiment_id)
    return done


def run_grid(
    grid: Mapping[str, Any], preset: str, jobs: Sequence[Job], out: Path, test_eval: bool = True, store: Path | None = None
) -> None:
    """Train ``jobs`` one after the other, logging to the store in ``store`` (default ``out``)."""
    store = store or out
    store.mkdir(parents=True, exist_ok=True)
    name = experiment_name(grid, preset)
    client, experiment = _client_and_experiment(store, name, create=True)
    for k, job in enumerate(jobs, 1):
        if (job.variant, job.seed, job.fold) in finished_jobs(grid, preset, out):
            print(f"[{k}/{len(jobs)}] {job.slug}: already in MLflow, skipped", flush=True)
            continue
        print(f"[{k}/{len(jobs)}] {job.slug} ...", flush=True)
        before = _run_ids(client, experiment.experiment_id)
        start = time.time()
        error, test = None, {}
        try:
            test = run_job(grid, job, out, name, test_eval, store)
        except Exception as e:  # one failed variant must not stop the grid; it is reported as failed
            error = f"{type(e).__name__}: {e}"
            print(f"[{k}/{len(jobs)}] {job.slug} FAILED: {error}", flush=True)
        new = _run_ids(client, experiment.experiment_id) - before
        if not new and error:  # it failed before its MLflow handler started: record the failure anyway
            run = client.create_run(experiment.experiment_id, run_name=job.slug)
            client.set_terminated(run.info.run_id, "FAILED")
            new = {run.info.run_id}
        for run_id in new:
            client.set_tag(run_id, TAG + "grid", grid["name"])
            client.set_tag(run_id, TAG + "preset", preset)
            client.set_tag(run_id, TAG + "variant", job.variant)
            client.set_tag(run_id, TAG + "seed", str(job.seed))
            client.set_tag(run_id, TAG + "fold", str(job.fold))
            client.set_tag(run_id, TAG + "wall_s", f"{time.time() - start:.1f}")
            client.set_tag(run_id, TAG + "set", json.dumps(job.extra, sort_keys=True))
            if error:
                client.set_tag(run_id, TAG + "error", error[:4000])
            for key, value in test.items():
                client.log_metric(run_id, key, value)
        print(f"[{k}/{len(jobs)}] {job.slug} done in {time.time() - start:.0f} s", flush=True)


def run_workers(
    grid_file: str, grid: Mapping[str, Any], preset: str, jobs: Sequence[Job], out: Path, workers: int, threads: int
) -> None:
    """
    Share the unfinished ``jobs`` round-robin among ``workers`` processes of ``threads`` torch threads each
    (small networks use a core better one job per core than two threads on one job). Worker ``k`` logs to its
    own SQLite store, ``<out>/workers/<k>``, so that no two processes write one database; run folders stay
    in ``<out>/runs`` and the report reads every store.
    """
    import subprocess

    done = finished_jobs(grid, preset, out)
    todo = [j for j in jobs if (j.variant, j.seed, j.fold) not in done]
    procs = []
    for k in range(min(workers, len(todo))):
        store = out / "workers" / str(k)
        store.mkdir(parents=True, exist_ok=True)
        # Created (and its schema migrated) here, one at a time: workers read each other's stores, and two
        # processes migrating one new SQLite database at once fail.
        _client_and_experiment(store, experiment_name(grid, preset), create=True)
        spec = [{"variant": j.variant, "seed": j.seed, "fold": j.fold, "extra": j.extra} for j in todo[k::workers]]
        (store / "jobs.json").write_text(json.dumps(spec, indent=1))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--grid", grid_file, "--preset", preset, "--out", str(out),
               "--threads", str(threads), "--worker", str(k)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        log = open(store / "worker.log", "a")
        procs.append((k, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log))
        print(f"worker {k}: {len(spec)} jobs, log {store / 'worker.log'}", flush=True)
    failed = []
    for k, proc, log in procs:
        if proc.wait() != 0:
            failed.append(k)
        log.close()
    if failed:
        raise RuntimeError(f"workers {failed} exited with an error; see their worker.log under {out / 'workers'}.")


# ---------------------------------------------------------------------------------------------------------
# Reading back and aggregating
# ---------------------------------------------------------------------------------------------------------


@dataclass
class RunRecord:
    """One run read back from MLflow: its tags and, per metric, its value per epoch."""

    variant: str
    seed: int
    fold: int | None
    status: str
    history: dict[str, dict[int, float]] = field(default_factory=dict)
    wall_s: float | None = None
    extra: str = "{}"
    start_time: int = 0

    def last(self, metric: str) -> float | None:
        h = self.history.get(metric)
        return h[max(h)] if h else None

    def at_best(self, metric: str, key_metric: str) -> float | None:
        """``metric`` at the epoch of the highest ``key_metric`` (the first such epoch)."""
        key, h = self.history.get(key_metric), self.history.get(metric)
        if not key or not h:
            return None
        best = max(sorted(key), key=lambda step: key[step])
        return h.get(best)


def latest_per_job(records: Sequence[RunRecord]) -> list[RunRecord]:
    """One run per (variant, seed, fold): the latest FINISHED one, else the latest (a rerun replaces a run)."""
    best: dict[tuple[str, int, int | None], RunRecord] = {}
    for r in sorted(records, key=lambda r: (r.status == "FINISHED", r.start_time)):
        best[(r.variant, r.seed, r.fold)] = r
    return list(best.values())


def read_runs(
    out: Path, grid: Mapping[str, Any], preset: str, metrics: Sequence[str], required: bool = True
) -> list[RunRecord]:
    """
    Every tagged run of the grid's preset in the store under ``out``, with the histories of ``metrics``.
    A store without the preset's experiment raises a ``ValueError`` if ``required``, else has no runs.
    """
    client, experiment = _client_and_experiment(out, experiment_name(grid, preset), create=False)
    if experiment is None:
        if not required:
            return []
        raise ValueError(f"no MLflow experiment {experiment_name(grid, preset)!r} in {tracking_uri(out)}.")
    records = []
    for r in client.search_runs([experiment.experiment_id], max_results=50000):
        tags = r.data.tags
        if TAG + "variant" not in tags:
            continue
        fold = tags.get(TAG + "fold", "None")
        rec = RunRecord(
            tags[TAG + "variant"],
            int(tags[TAG + "seed"]),
            None if fold in ("", "None") else int(fold),
            r.info.status,
            wall_s=float(tags[TAG + "wall_s"]) if TAG + "wall_s" in tags else None,
            extra=tags.get(TAG + "set", "{}"),
            start_time=r.info.start_time or 0,
        )
        for metric in metrics:
            if metric in r.data.metrics:
                rec.history[metric] = {m.step: m.value for m in client.get_metric_history(r.info.run_id, metric)}
        records.append(rec)
    return records


@dataclass
class Stat:
    """mean +- std over seeds (ddof 1; 0 for one seed) of per-seed scores, and how many seeds."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        v = np.asarray(values, dtype=float)
        return cls(float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v))

    def fmt(self, scale: float = 100.0) -> str:
        return f"{self.mean * scale:.1f} ± {self.std * scale:.1f}"


@dataclass
class Row:
    variant: str
    runs: int
    failed: int
    seeds: int
    folds: int
    last: dict[str, Stat]
    best: dict[str, Stat]
    delta: Stat | None = None  # paired difference of the key metric (last epoch) to the baseline
    wins: tuple[int, int] | None = None  # (seed-fold pairs where the variant beats the baseline, pairs)
    minutes: float | None = None

    @property
    def significant(self) -> bool | None:
        """The key-metric difference is at least twice its standard error over seeds (None: not decidable)."""
        if self.delta is None or self.delta.n < 2:
            return None
        return abs(self.delta.mean) >= 2 * self.delta.std / math.sqrt(self.delta.n)


def _per_seed(records: Sequence[RunRecord], value: Any) -> dict[int, float]:
    """Per seed, the mean over its folds of ``value(record)``, skipping runs without the value."""
    by_seed: dict[int, list[float]] = defaultdict(list)
    for r in records:
        v = value(r)
        if v is not None:
            by_seed[r.seed].append(v)
    return {s: float(np.mean(v)) for s, v in by_seed.items()}


def summarise(
    records: Sequence[RunRecord],
    metrics: Sequence[str],
    key_metric: str,
    baseline: str | Mapping[str, str] | None,
    order: Sequence[str] | None = None,
) -> list[Row]:
    """
    One row per variant (in ``order``, default: the baseline first; then any others by name) over its FINISHED runs. Folds are averaged
    within a seed first, so a seed is one cross-validated score; the paired difference to ``baseline`` uses
    only the (seed, fold) runs both variants finished. ``baseline`` is one variant, or a mapping from a
    variant to its own baseline (e.g. each backbone + SRB to its backbone).
    """
    by_variant: dict[str, list[RunRecord]] = defaultdict(list)
    failed: dict[str, int] = defaultdict(int)
    for r in records:
        if r.status == "FINISHED":
            by_variant[r.variant].append(r)
        else:
            failed[r.variant] += 1
    first = [baseline] if isinstance(baseline, str) else []
    names = [v for v in (order or first) if v in by_variant or v in failed]
    names += sorted(v for v in set(by_variant) | set(failed) if v not in names)
    rows = []
    for name in names:
        runs = by_variant.get(name, [])
        last = {m: Stat.of(list(s.values())) for m in metrics if (s := _per_seed(runs, lambda r, m=m: r.last(m)))}
        best = {
            m: Stat.of(list(s.values()))
            for m in metrics
            if (s := _per_seed(runs, lambda r, m=m: r.at_best(m, key_metric)))
        }
        row = Row(name, len(runs), failed.get(name, 0), len({r.seed for r in runs}), len({r.fold for r in runs}), last, best)
        walls = [r.wall_s for r in runs if r.wall_s is not None]
        row.minutes = float(np.mean(walls)) / 60 if walls else None
        ref = baseline.get(name) if isinstance(baseline, Mapping) else baseline
        base = {(r.seed, r.fold): r for r in by_variant.get(ref or "", [])}
        if ref and name != ref and base:
            pairs = [(r, base[(r.seed, r.fold)]) for r in runs if (r.seed, r.fold) in base]
            pairs = [(a, b) for a, b in pairs if a.last(key_metric) is not None and b.last(key_metric) is not None]
            if pairs:
                per_seed: dict[int, list[float]] = defaultdict(list)
                for a, b in pairs:
                    per_seed[a.seed].append(a.last(key_metric) - b.last(key_metric))
                diff = {s: float(np.mean(v)) for s, v in per_seed.items()}
                row.delta = Stat.of(list(diff.values()))
                row.wins = (sum(a.last(key_metric) > b.last(key_metric) for a, b in pairs), len(pairs))
        rows.append(row)
    return rows


def format_table(
    rows: Sequence[Row], metrics: Sequence[str], key_metric: str, baseline: str | Mapping[str, str] | None
) -> str:
    """Markdown: each metric at the last epoch (x100), the key metric at its best epoch, the paired delta."""
    short = {m: m.removeprefix("val_") for m in metrics}
    header = ["variant", "runs (seeds x folds)"] + [short[m] for m in metrics]
    header += [f"best-epoch {short[key_metric]}"]
    if baseline:
        against = baseline if isinstance(baseline, str) else "its baseline"
        header += [f"Δ {short[key_metric]} vs {against}", "wins", "inside noise?"]
    header += ["min/run"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        runs = f"{row.runs} ({row.seeds} x {row.folds})" + (f", {row.failed} failed" if row.failed else "")
        cells = [row.variant, runs]
        cells += [row.last[m].fmt() if m in row.last else "—" for m in metrics]
        cells += [row.best[key_metric].fmt() if key_metric in row.best else "—"]
        if baseline:
            if row.delta is None:
                cells += ["—", "—", "—"]
            else:
                sign = "+" if row.delta.mean >= 0 else "−"
                cells += [f"{sign}{abs(row.delta.mean) * 100:.1f} ± {row.delta.std * 100:.1f}"]
                cells += [f"{row.wins[0]}/{row.wins[1]}" if row.wins else "—"]
                sig = row.significant
                cells += ["n/a (1 seed)" if sig is None else ("no" if sig else "yes")]
        cells += [f"{row.minutes:.1f}" if row.minutes is not None else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_summary(rows: Sequence[Row], records: Sequence[RunRecord], key_metric: str, path: Path) -> None:
    """Bar chart of the key metric (last epoch, mean +- std over seeds, dots: seeds) and its mean curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, max(3.0, 0.45 * len(rows) + 1.5)))
    names = [r.variant for r in rows if key_metric in r.last]
    for i, row in enumerate(r for r in rows if key_metric in r.last):
        s = row.last[key_metric]
        ax.barh(i, s.mean * 100, xerr=s.std * 100, color="tab:blue" if "SRB" in row.variant else "tab:gray", alpha=0.7)
        seeds = _per_seed([r for r in records if r.variant == row.variant and r.status == "FINISHED"],
                          lambda r: r.last(key_metric))
        ax.plot([v * 100 for v in seeds.values()], [i] * len(seeds), "k.", ms=4)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    lo = min((r.last[key_metric].mean - 2 * r.last[key_metric].std) * 100 for r in rows if key_metric in r.last)
    ax.set_xlim(max(0.0, lo - 2), None)
    ax.set_xlabel(f"{key_metric} x100, last epoch (mean ± std over seeds; dots: seeds)")
    for name in names:
        curves = [r.history[key_metric] for r in records if r.variant == name and key_metric in r.history]
        steps = sorted(set.intersection(*(set(c) for c in curves)))
        ax2.plot(steps, [np.mean([c[s] for c in curves]) * 100 for s in steps], label=name)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel(f"{key_metric} x100 (mean over runs)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(
    grid: Mapping[str, Any],
    preset: str,
    out: Path,
    order: Sequence[str] | None = None,
    merge: Sequence[Path] = (),
    variants: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    folds: Sequence[int] | None = None,
) -> str:
    """
    Read the preset's runs back from MLflow (the store under ``out`` and those under ``merge``, e.g. runs of
    the same experiment made on another machine), write ``<out>/results.md`` and ``<out>/summary.png``.
    The report covers the preset's seeds and folds (or ``seeds`` / ``folds``): presets that share one
    experiment (``"experiment"``) report their own split. ``variants`` keeps only those rows.
    """
    metrics = list(grid["metrics"]) + list(grid.get("test_metrics", []))
    spec = grid["presets"][preset]
    keep_seeds = set(seeds if seeds is not None else spec.get("seeds", [0]))
    fold_list = folds if folds is not None else spec.get("folds")
    # the folder's store and its workers' stores (any of them may lack the experiment), and the merged ones
    found = [r for o in stores(out) for r in read_runs(o, grid, preset, metrics, required=False)]
    found += [r for o in merge for r in read_runs(o, grid, preset, metrics)]
    if not found:
        raise ValueError(f"no runs of MLflow experiment {experiment_name(grid, preset)!r} under {out}.")
    records = [
        r
        for r in found
        if r.seed in keep_seeds and (fold_list is None or r.fold in fold_list) and (not variants or r.variant in variants)
    ]
    records = latest_per_job(records)
    baseline = grid.get("baselines", grid["baseline"])
    rows = summarise(records, metrics, grid["key_metric"], baseline, order or list(grid["variants"]))
    table = format_table(rows, metrics, grid["key_metric"], baseline)
    plot_summary(rows, records, grid["key_metric"], out / "summary.png")
    extras = sorted({r.extra for r in records} - {"{}"})
    text = (
        f"Grid `{grid['name']}`, preset `{preset}`, MLflow store(s) "
        f"{', '.join(f'`{tracking_uri(o)}`' for o in (*stores(out), *merge))}, experiment "
        f"`{experiment_name(grid, preset)}`.\n"
        f"Bundle overrides of the preset: `{json.dumps(grid['presets'][preset].get('overrides', {}))}`"
        + (f"; from --set: {', '.join(f'`{e}`' for e in extras)}" if extras else "")
        + ".\nScores x100: mean ± std over seeds of each seed's mean over its folds, metrics at the last epoch.\n\n"
        + table
    )
    (out / "results.md").write_text(text)
    return text


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", required=True, help="a grid file, e.g. workflows/grids/isic_table1.json")
    parser.add_argument("--preset", required=True, help="one of the grid's presets (smoke, cpu, ..., full)")
    parser.add_argument("--out", required=True, help="folder of the MLflow store, the runs, the table and figures")
    parser.add_argument("--variants", nargs="+", help="only these variants (default: the preset's)")
    parser.add_argument("--seeds", nargs="+", type=int, help="only these seeds (default: the preset's)")
    parser.add_argument("--folds", nargs="+", type=int, help="only these folds (default: the preset's)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="extra bundle overrides (JSON values)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--report-only", action="store_true", help="only read the existing runs back and report")
    parser.add_argument("--merge", nargs="+", default=[], help="more --out folders whose runs join the report")
    parser.add_argument("--workers", type=int, default=1, help="train in this many processes, one job each at a time")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)  # a --workers child
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")

    grid = load_grid(args.grid)
    out = Path(args.out)
    if not args.report_only:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        if args.worker is not None:  # a child of --workers: its jobs are in its store's jobs.json
            store = out / "workers" / str(args.worker)
            spec = json.loads((store / "jobs.json").read_text())
            jobs = [j for e in spec for j in plan(grid, args.preset, [e["variant"]], [e["seed"]], [e["fold"]], e["extra"])]
            run_grid(grid, args.preset, jobs, out, store=store)
            return f"worker {args.worker}: {len(jobs)} jobs"
        jobs = plan(grid, args.preset, args.variants, args.seeds, args.folds, _parse_set(args.set))
        if args.workers > 1:
            run_workers(args.grid, grid, args.preset, jobs, out, args.workers, args.threads or 1)
        else:
            run_grid(grid, args.preset, jobs, out)
    text = report(
        grid, args.preset, out, merge=[Path(m) for m in args.merge], variants=args.variants, seeds=args.seeds, folds=args.folds
    )
    print(text)
    return text


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
