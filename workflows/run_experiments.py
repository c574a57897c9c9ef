"""
Run one of the paper's experiment grids through a bundle, log every run to MLflow, and report it.

A grid (``workflows/grids/*.json``) names a bundle, its variants (name -> bundle overrides) and its
presets (which variants, seeds and folds, with which training budget). This script trains every
(variant, seed, fold) of a preset with :class:`monai.bundle.ConfigWorkflow`, all into one
MLflow store, tags each run with ``srb.variant`` / ``srb.seed`` / ``srb.fold``, then reads the
runs back from MLflow into a markdown table (mean +- std over seeds) and PNG figures.

    python workflows/run_experiments.py --grid workflows/grids/isic_table1.json --preset cpu \
        --out runs/experiments/isic_cpu
    python workflows/run_experiments.py --grid ... --preset cpu --out ... --report-only
    python workflows/run_experiments.py --grid ... --preset cpu_grid --out ... --cpus 2 --threads 1
    python workflows/run_experiments.py --grid ... --preset full --out ... --address auto --tracking_uri http://host:5000

Each job is a Ray task of ``--threads`` CPUs (and a GPU when its device is CUDA): Ray starts in this process
(``--cpus``: how many cores it uses), or ``--address`` sends the jobs to an existing cluster, which needs the
repository and its data at the same paths on every node. Jobs start longest first (by their network's
parameter count), so that the long ones do not finish alone at the end. A job that raises is recorded FAILED,
with its traceback, and the others go on; a rerun skips the FINISHED ones. Without Ray the jobs run one after
another in this process. Every job logs to one MLflow store: ``<out>/mlflow.db``, served by an ``mlflow
server`` on loopback for the duration of the grid, or the ``--tracking_uri`` server that all nodes reach.

Aggregation: with folds, a seed's score is the mean over its folds (a cross-validated score), then
mean +- std over seeds; without folds each seed is one run. Each metric is read at the last epoch
(``last``) and at the epoch of the best key metric (``best``, the epoch ``model.pt`` holds; optimistic,
because that epoch is chosen on the same validation images). The difference to the baseline is paired
(same seed, same folds); it counts as inside the noise unless its mean is at least twice its standard
error over seeds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
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
    # run_name_ids: the bundle ids of the run name, which every job sets to its slug so that its run is found
    for key in ("name", "bundle", "configs", "run_name_ids", "variants", "presets", "key_metric", "metrics", "baseline"):
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
# MLflow: one store per experiment
# ---------------------------------------------------------------------------------------------------------


def tracking_uri(out: Path) -> str:
    """The SQLite file of an ``--out`` folder, ``sqlite:///<out>/mlflow.db``: the experiment's one store."""
    return f"sqlite:///{(out / 'mlflow.db').resolve()}"


def experiment_name(grid: Mapping[str, Any], preset: str) -> str:
    """``<grid>__<preset>``; a preset with ``"experiment": "<other preset>"`` adds its runs to that one's."""
    return f"{grid['name']}__{grid['presets'][preset].get('experiment', preset)}"


def merge_uris(path: str) -> list[str]:
    """
    The stores behind one ``--merge`` item: a tracking URI as it is; a SQLite file; or an ``--out`` folder
    of any version of this script, i.e. its ``mlflow.db`` plus the per-worker stores ``workers/<k>/mlflow.db``
    that the removed ``--workers`` option wrote.
    """
    if re.match(r"^[a-z][a-z0-9+]*://", path) or path.startswith("sqlite:"):
        return [path]
    p = Path(path)
    files = [p] if p.is_file() else [f for f in [p / "mlflow.db", *sorted(p.glob("workers/*/mlflow.db"))] if f.is_file()]
    if not files:
        raise ValueError(
            f"--merge {path!r}: expected a tracking URI, an MLflow SQLite file or an --out folder holding mlflow.db "
            "(or workers/<k>/mlflow.db), found none."
        )
    return [f"sqlite:///{f.resolve()}" for f in files]


def _client_and_experiment(uri: str, name: str, create: bool, artifact_location: str | None = None) -> tuple[Any, Any]:
    import mlflow

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None and create:
        client.create_experiment(name, artifact_location=artifact_location)
        experiment = client.get_experiment_by_name(name)
    return client, experiment


def _finished_jobs(client: Any, experiment_id: str) -> set[tuple[str, int, int | None]]:
    done = set()
    for r in client.search_runs([experiment_id], filter_string="attributes.status = 'FINISHED'", max_results=50000):
        tags = r.data.tags
        if TAG + "variant" in tags:
            fold = tags.get(TAG + "fold", "")
            done.add((tags[TAG + "variant"], int(tags[TAG + "seed"]), int(fold) if fold not in ("", "None") else None))
    return done


def finished_jobs(grid: Mapping[str, Any], preset: str, uris: Sequence[str]) -> set[tuple[str, int, int | None]]:
    """(variant, seed, fold) of every FINISHED run of the preset's experiment in the stores ``uris``."""
    done: set[tuple[str, int, int | None]] = set()
    for uri in uris:
        client, experiment = _client_and_experiment(uri, experiment_name(grid, preset), create=False)
        if experiment is not None:
            done |= _finished_jobs(client, experiment.experiment_id)
    return done


@contextlib.contextmanager
def mlflow_server(out: Path, timeout: float = 180.0) -> Iterator[str]:
    """
    Serve ``<out>/mlflow.db`` (artifacts: ``<out>/mlartifacts``) with ``mlflow server`` on a free loopback
    port while the block runs, and yield its ``http://`` URI; the server stops when the block ends, also on
    an error or Ctrl-C. Every job logs through it, so no two processes open the SQLite file. One server
    process (``--workers 1``): several would share the file again. Its log: ``<out>/mlflow_server.log``.
    """
    import subprocess
    import urllib.request

    out.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri(out), "--artifacts-destination",
           str((out / "mlartifacts").resolve()), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    # MLflow 3's server also starts a job runner and seven polling task consumers (for its GenAI jobs), which
    # took a quarter of a core while idle and slowed 2-core grids; a grid's store needs none of them.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    with open(out / "mlflow_server.log", "a") as log:
        # its own session: Ctrl-C in the terminal reaches this process, which then stops the server's whole group
        server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.time() > deadline:
                raise RuntimeError(
                    f"mlflow server for {tracking_uri(out)} did not answer on {uri} (exit code {server.poll()}); "
                    f"see {out / 'mlflow_server.log'}."
                )
            time.sleep(0.5)
        yield uri
    finally:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(server.pid, sig)
                server.wait(wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


# ---------------------------------------------------------------------------------------------------------
# Running one job
# ---------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """
    Send this process's stdout and stderr to ``path`` meanwhile: the file descriptors (C libraries, child
    processes), ``sys.stdout`` / ``sys.stderr`` (where these are not the descriptors, e.g. under pytest), and
    the logging stream handlers that already exist (MONAI's ``StatsHandler`` keeps the stream it was given
    when its logger was first set up, which an earlier job or test may have done).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    loggers = [logging.getLogger()] + [
        lg for lg in list(logging.Logger.manager.loggerDict.values()) if isinstance(lg, logging.Logger)
    ]
    streams = {h: h.stream for lg in loggers for h in lg.handlers if type(h) is logging.StreamHandler}
    outer = sys.stderr
    try:
        with open(path, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            for h in streams:
                h.stream = log  # not setStream: it flushes the old stream, which may be closed
            try:
                yield
            finally:
                # handlers set up during the job took the log file as their stream: leave none on it once closed
                for lg in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
                    for h in getattr(lg, "handlers", []):
                        if type(h) is logging.StreamHandler and h.stream is log:
                            h.stream = streams.get(h, outer)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


def _from_root(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` with a relative ``dataset_dir`` made absolute: grids name paths from the repository root."""
    overrides = dict(overrides)
    if isinstance(overrides.get("dataset_dir"), str) and not Path(overrides["dataset_dir"]).is_absolute():
        overrides["dataset_dir"] = str((ROOT / overrides["dataset_dir"]).resolve())
    return overrides


def run_job(
    grid: Mapping[str, Any], job: Job, out: Path, uri: str, experiment: str, test_eval: bool
) -> dict[str, float]:
    """
    Train one job in this process; returns the test metrics when the grid defines a test set. The run folder is
    ``<out>/runs/<job>``; the run is logged to the MLflow store ``uri``.
    """
    from monai.bundle import ConfigWorkflow

    bundle = ROOT / grid["bundle"]
    run_dir = out / "runs" / job.slug
    overrides = _from_root(job.overrides)
    overrides.update(output_dir=str(run_dir), tracking_uri=uri, experiment_name=experiment, bundle_root=str(bundle))
    for run_name_id in grid["run_name_ids"]:
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


def execute_job(
    grid: Mapping[str, Any],
    preset: str,
    job: Mapping[str, Any],
    out: str,
    uri: str,
    test_eval: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    """
    Train one job (``job``: the fields of a :class:`Job`) in whichever process calls it, this one or a Ray
    worker, and record it in MLflow: the job's run (found by its run name, the job's slug) gets the
    ``srb.*`` tags, and is marked ``FAILED`` with the traceback in ``srb.error`` if the job raised. The
    job's output goes to ``<out>/runs/<job>/job.log``. Never raises for a failed job: it returns
    ``{"status": "FINISHED" | "FAILED", "metric": last key metric, "wall_s", "error", "traceback", ...}``.
    """
    if str(ROOT / "workflows") not in sys.path:
        sys.path.insert(0, str(ROOT / "workflows"))  # grid overrides reach workflows/ helpers (srb_tuning)
    if threads:
        import torch

        torch.set_num_threads(threads)
    j = Job(job["variant"], job["seed"], job["fold"], dict(job["overrides"]), dict(job["extra"]))
    name = experiment_name(grid, preset)
    client, experiment = _client_and_experiment(uri, name, create=False)
    by_name = f"attributes.run_name = '{j.slug}'"
    before = set()
    for r in client.search_runs([experiment.experiment_id], filter_string=by_name, max_results=50000):
        before.add(r.info.run_id)
        if r.info.status == "RUNNING":  # left by a killed runner; the bundle's handler would join it
            client.set_terminated(r.info.run_id, "FAILED")
    run_dir = Path(out) / "runs" / j.slug
    run_dir.mkdir(parents=True, exist_ok=True)
    with _output_to(run_dir / "job.log"):  # MLflow's client prints too
        start = time.time()
        error = trace = None
        test: dict[str, float] = {}
        try:
            test = run_job(grid, j, Path(out), uri, name, test_eval)
        except Exception as e:  # one failed job must not stop the grid; it is recorded as failed
            cause = e
            while cause.__cause__ is not None:  # MONAI wraps the error of a config item: name the original one
                cause = cause.__cause__
            error, trace = f"{type(cause).__name__}: {cause}", traceback.format_exc()
        wall = time.time() - start
        runs = client.search_runs([experiment.experiment_id], filter_string=by_name, max_results=50000)
        new = [r.info.run_id for r in runs if r.info.run_id not in before]
        if not new and error:  # it failed before its MLflow handler started
            new = [client.create_run(experiment.experiment_id, run_name=j.slug).info.run_id]
        node = _ray_node()
        for run_id in new:
            tags = {"grid": grid["name"], "preset": preset, "variant": j.variant, "seed": str(j.seed),
                    "fold": str(j.fold), "wall_s": f"{wall:.1f}", "set": json.dumps(j.extra, sort_keys=True),
                    "host": socket.gethostname()}
            if node:
                tags["ray_node"] = node
            if error:
                tags["error"] = trace[-7000:]  # MLflow keeps 8000 characters of a tag
            for key, value in tags.items():
                client.set_tag(run_id, TAG + key, value)
            for key, value in test.items():
                client.log_metric(run_id, key, value)
            if error:
                client.set_terminated(run_id, "FAILED")
        metric = None
        if new and not error:
            metric = client.get_run(new[-1]).data.metrics.get(grid["key_metric"])
    return {"variant": j.variant, "seed": j.seed, "fold": j.fold, "slug": j.slug, "status": "FAILED" if error else "FINISHED",
            "metric": metric, "wall_s": wall, "error": error, "traceback": trace, "log": str(run_dir / "job.log")}


def _ray_node() -> str | None:
    """The Ray node id when this process is a Ray worker, else ``None``."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    return ray.get_runtime_context().get_node_id()


# ---------------------------------------------------------------------------------------------------------
# Running a grid: Ray tasks, or one job after another
# ---------------------------------------------------------------------------------------------------------


def job_costs(grid: Mapping[str, Any], jobs: Sequence[Job]) -> dict[str, float]:
    """
    Per variant, the cost used to start the longest jobs first: its network's parameter count, built from the
    bundle config with the job's overrides on the ``meta`` device (no memory, milliseconds). A proxy, not a
    time: the SPM (29.6M) runs about 7x as long as a U-Net (1.9M); the U-Net variants (1.85-2.3M) are close
    in both. A network that cannot be built costs ``inf``: its job runs, and fails, first.
    """
    import torch
    from monai.bundle import ConfigParser

    bundle = ROOT / grid["bundle"]
    costs: dict[str, float] = {}
    for job in jobs:
        if job.variant in costs:
            continue
        parser = ConfigParser()
        parser.read_config([str(bundle / c) for c in grid["configs"]])
        parser.update({**_from_root(job.overrides), "bundle_root": str(bundle)})
        try:
            with torch.device("meta"):
                network = parser.get_parsed_content("network_def")
            costs[job.variant] = float(sum(p.numel() for p in network.parameters()))
        except Exception:  # the job itself reports why
            costs[job.variant] = math.inf
    return costs


def longest_first(jobs: Sequence[Job], costs: Mapping[str, float]) -> list[Job]:
    """``jobs`` by decreasing cost of their variant; equal costs keep their order (seed-major)."""
    return sorted(jobs, key=lambda j: -costs[j.variant])


def _needs_gpu(job: Job, cluster_gpus: float) -> bool:
    """
    A job takes a GPU when its ``device`` override names CUDA, or when it has none (the bundles then pick
    CUDA if there is one) and the cluster has GPUs.
    """
    device = job.overrides.get("device")
    if device is None:
        return cluster_gpus > 0
    if "cuda" in str(device):
        if cluster_gpus <= 0:
            raise ValueError(f"job {job.slug} asks for device {device!r}, but the Ray cluster has no GPU.")
        return True
    return False


class _Progress:
    """One line per finished job, and a progress bar with an ETA (of jobs, at the rate they finish so far)."""

    def __init__(self, total: int, key_metric: str) -> None:
        from tqdm import tqdm

        self.key_metric, self.write = key_metric, tqdm.write
        self.bar = tqdm(total=total, unit="job", desc="grid", dynamic_ncols=True, file=sys.stderr)

    def done(self, r: Mapping[str, Any]) -> None:
        where = f"{r['variant']} | seed {r['seed']} | fold {r['fold']}"
        if r["status"] == "FAILED":
            self.write(f"{where} | FAILED after {r['wall_s'] / 60:.1f} min: {r['error']} (log: {r['log']})\n{r['traceback']}")
        else:
            value = "—" if r["metric"] is None else f"{r['metric']:.4f}"
            self.write(f"{where} | {self.key_metric} {value} | {r['wall_s'] / 60:.1f} min")
        self.bar.update()

    def close(self) -> None:
        self.bar.close()


def _failure(job: Job, error: BaseException, grid: Mapping[str, Any], preset: str, uri: str) -> dict[str, Any]:
    """Record a job whose Ray task died without reporting (its worker crashed or was killed) as FAILED."""
    client, experiment = _client_and_experiment(uri, experiment_name(grid, preset), create=False)
    run_id = client.create_run(experiment.experiment_id, run_name=job.slug).info.run_id
    tags = {"grid": grid["name"], "preset": preset, "variant": job.variant, "seed": str(job.seed), "fold": str(job.fold),
            "set": json.dumps(job.extra, sort_keys=True), "error": str(error)[-7000:]}
    for key, value in tags.items():
        client.set_tag(run_id, TAG + key, value)
    client.set_terminated(run_id, "FAILED")
    return {"variant": job.variant, "seed": job.seed, "fold": job.fold, "slug": job.slug, "status": "FAILED",
            "metric": None, "wall_s": 0.0, "error": f"{type(error).__name__}", "traceback": str(error), "log": "—"}


def _run_on_ray(
    ray: Any,
    grid: Mapping[str, Any],
    preset: str,
    jobs: Sequence[Job],
    out: Path,
    uri: str,
    test_eval: bool,
    threads: int,
    progress: _Progress,
) -> list[dict[str, Any]]:
    """
    Each job is a Ray task of ``threads`` CPUs (and one GPU, see :func:`_needs_gpu`). Jobs are handed to Ray
    longest first, only as many as the cluster has room for, so a slot that frees up takes the next longest
    job and Ctrl-C leaves nothing queued.
    """
    if __name__ != "__main__":  # imported (a test, another script): workers cannot import this file by name
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    task = ray.remote(execute_job)
    gpus = ray.cluster_resources().get("GPU", 0)
    todo = [(job, _needs_gpu(job, gpus)) for job in longest_first(jobs, job_costs(grid, jobs))]
    running: dict[Any, Job] = {}
    results = []
    try:
        while todo or running:
            resources = ray.cluster_resources()
            room = max(1, int(resources.get("CPU", threads) // threads))
            while todo and len(running) < room:
                job, gpu = todo.pop(0)
                ref = task.options(num_cpus=threads, num_gpus=1 if gpu else 0, name=job.slug).remote(
                    grid, preset, {"variant": job.variant, "seed": job.seed, "fold": job.fold,
                                   "overrides": job.overrides, "extra": job.extra}, str(out), uri, test_eval, threads
                )
                running[ref] = job
            ready, _ = ray.wait(list(running), num_returns=1)
            job = running.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except Exception as e:  # the task's worker died: execute_job could not report it
                result = _failure(job, e, grid, preset, uri)
            results.append(result)
            progress.done(result)
    finally:
        for ref in running:  # Ctrl-C or an error here: do not leave jobs running on a cluster
            ray.cancel(ref, force=True)
    return results


def run_grid(
    grid: Mapping[str, Any],
    preset: str,
    jobs: Sequence[Job],
    out: Path,
    test_eval: bool = True,
    uri: str | None = None,
    merge: Sequence[str] = (),
    address: str | None = None,
    cpus: int | None = None,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """
    Train the ``jobs`` that no FINISHED run in the store (or in the ``merge`` stores) holds yet, and return
    what :func:`execute_job` reports for each.

    Args:
        uri: an MLflow tracking server every job reaches (``http://...``); ``None``: start one on loopback
            over ``<out>/mlflow.db`` for the duration (:func:`mlflow_server`).
        address: a Ray cluster (``auto``, ``ray://host:10001``, ``host:6379``); ``None``: Ray starts in this
            process with ``cpus`` CPUs (default: all). Without Ray installed, jobs run one after another here.
        threads: CPUs (torch threads) per job (default: 1 under Ray; torch's default without Ray).
    """
    done = finished_jobs(grid, preset, [uri or tracking_uri(out), *merge])
    todo = [j for j in jobs if (j.variant, j.seed, j.fold) not in done]
    if len(todo) < len(jobs):
        print(f"{len(jobs) - len(todo)} of {len(jobs)} jobs are FINISHED in MLflow already: skipped", flush=True)
    if not todo:
        return []
    try:
        import ray
    except ImportError:
        if address is not None:
            raise ValueError(f"--address {address!r} needs Ray: pip install -e \".[grid]\"") from None
        ray = None
        print('Ray is not installed: the jobs run one after another in this process. For parallel runs on all cores '
              'or a cluster: pip install -e ".[grid]"', flush=True)
    with contextlib.ExitStack() as stack:
        if uri is None:
            uri = stack.enter_context(mlflow_server(out))
            artifacts = (out / "mlartifacts").resolve().as_uri()  # beside the store, as `mlflow ui` expects
            if address is not None:
                print(f"The MLflow server listens on {uri} only: jobs on other machines need --tracking_uri.", flush=True)
        else:
            artifacts = None  # the server's own artifact store
        _client_and_experiment(uri, experiment_name(grid, preset), create=True, artifact_location=artifacts)
        progress = _Progress(len(todo), grid["key_metric"])
        stack.callback(progress.close)
        if ray is None:
            results = []
            for job in todo:
                job_spec = {"variant": job.variant, "seed": job.seed, "fold": job.fold, "overrides": job.overrides,
                            "extra": job.extra}
                results.append(execute_job(grid, preset, job_spec, str(out), uri, test_eval, threads))
                progress.done(results[-1])
            return results
        if address is None:
            # each job's output is in its job.log, and failures come back with their tracebacks
            # address "local": a new Ray here, even where a `ray start` cluster runs or left its address file
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
        else:
            ray.init(address=address, logging_level="WARNING", log_to_driver=False)
        stack.callback(ray.shutdown)
        return _run_on_ray(ray, grid, preset, todo, out, uri, test_eval, threads or 1, progress)


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
    uri: str, grid: Mapping[str, Any], preset: str, metrics: Sequence[str], required: bool = True
) -> list[RunRecord]:
    """
    Every tagged run of the grid's preset in the MLflow store ``uri``, with the histories of ``metrics``.
    A store without the preset's experiment raises a ``ValueError`` if ``required``, else has no runs.
    """
    client, experiment = _client_and_experiment(uri, experiment_name(grid, preset), create=False)
    if experiment is None:
        if not required:
            return []
        raise ValueError(f"no MLflow experiment {experiment_name(grid, preset)!r} in {uri}.")
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
    """Markdown: each metric at the last epoch (x100 but those in mm), the key metric at its best epoch, the paired delta."""
    short = {m: m.removeprefix("val_") for m in metrics}
    # scores in [0, 1] are shown x100; a metric with a unit (``..._mm``: the HC18 head-circumference error) as it is
    scale = {m: 1.0 if m.endswith("_mm") else 100.0 for m in metrics}
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
        cells += [row.last[m].fmt(scale[m]) if m in row.last else "—" for m in metrics]
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
    merge: Sequence[str] = (),
    variants: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    folds: Sequence[int] | None = None,
    uri: str | None = None,
) -> str:
    """
    Read the preset's runs back from MLflow (the store ``uri``, default ``<out>/mlflow.db``, and the stores
    ``merge``, e.g. runs of the same experiment made earlier or on another machine), write
    ``<out>/results.md`` and ``<out>/summary.png``. The report covers the preset's seeds and folds (or
    ``seeds`` / ``folds``): presets that share one experiment (``"experiment"``) report their own split.
    ``variants`` keeps only those rows.
    """
    metrics = list(grid["metrics"]) + list(grid.get("test_metrics", []))
    spec = grid["presets"][preset]
    keep_seeds = set(seeds if seeds is not None else spec.get("seeds", [0]))
    fold_list = folds if folds is not None else spec.get("folds")
    own = [uri] if uri else [tracking_uri(out)] if (out / "mlflow.db").is_file() else []  # opening one creates it
    uris = [*own, *merge]
    # any one store may lack the experiment (a merged folder's per-worker stores); all of them together may not
    found = [r for u in uris for r in read_runs(u, grid, preset, metrics, required=False)]
    if not found:
        raise ValueError(f"no runs of MLflow experiment {experiment_name(grid, preset)!r} in {', '.join(uris)}.")
    records = [
        r
        for r in found
        if r.seed in keep_seeds and (fold_list is None or r.fold in fold_list) and (not variants or r.variant in variants)
    ]
    records = latest_per_job(records)
    baseline = grid.get("baselines", grid["baseline"])
    rows = summarise(records, metrics, grid["key_metric"], baseline, order or list(grid["variants"]))
    table = format_table(rows, metrics, grid["key_metric"], baseline)
    if any(grid["key_metric"] in r.last for r in rows):  # not when every run failed
        plot_summary(rows, records, grid["key_metric"], out / "summary.png")
    extras = sorted({r.extra for r in records} - {"{}"})
    text = (
        f"Grid `{grid['name']}`, preset `{preset}`, MLflow store(s) "
        f"{', '.join(f'`{u}`' for u in uris)}, experiment "
        f"`{experiment_name(grid, preset)}`.\n"
        f"Bundle overrides of the preset: `{json.dumps(grid['presets'][preset].get('overrides', {}))}`"
        + (f"; from --set: {', '.join(f'`{e}`' for e in extras)}" if extras else "")
        + ".\nScores x100 (errors in mm as they are): mean ± std over seeds of each seed's mean over its folds, metrics at the last epoch.\n\n"
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
    parser.add_argument("--threads", type=int, default=None,
                        help="CPUs (torch threads) per job (default: 1 under Ray; torch's default without Ray)")
    parser.add_argument("--cpus", type=int, default=None, help="CPUs of the Ray started in this process (default: all)")
    parser.add_argument("--address", default=None,
                        help="an existing Ray cluster: auto, ray://host:10001 or host:port (default: start Ray here)")
    parser.add_argument("--tracking_uri", default=None,
                        help="an MLflow server every job reaches, http://host:port (default: serve <out>/mlflow.db "
                        "on loopback while the grid runs)")
    parser.add_argument("--report-only", action="store_true", help="only read the existing runs back and report")
    parser.add_argument("--merge", nargs="+", default=[], metavar="PATH",
                        help="more stores whose runs join the report and count as done: --out folders (also those of "
                        "earlier versions, with workers/<k>/mlflow.db), SQLite files or tracking URIs")
    args = parser.parse_args(argv)
    for name in ("threads", "cpus"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.cpus is not None and args.address is not None:
        parser.error(f"--cpus sizes the Ray started here; the cluster at --address {args.address} has its own CPUs")

    grid = load_grid(args.grid)
    out = Path(args.out)
    merge = [u for m in args.merge for u in merge_uris(m)]
    results: list[dict[str, Any]] = []
    if not args.report_only:
        jobs = plan(grid, args.preset, args.variants, args.seeds, args.folds, _parse_set(args.set))
        results = run_grid(grid, args.preset, jobs, out, uri=args.tracking_uri, merge=merge, address=args.address,
                           cpus=args.cpus, threads=args.threads)
    text = report(grid, args.preset, out, merge=merge, variants=args.variants, seeds=args.seeds, folds=args.folds,
                  uri=args.tracking_uri)
    print(text)
    failed = [r for r in results if r["status"] == "FAILED"]
    if failed:
        raise SystemExit(
            f"{len(failed)} of {len(results)} jobs FAILED (tracebacks above and in MLflow's srb.error tags): "
            + "; ".join(f"{r['variant']} seed {r['seed']} fold {r['fold']}: {r['error']}" for r in failed)
        )
    return text


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
