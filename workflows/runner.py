"""
Running a grid's jobs (:mod:`workflows.job`) as Ray tasks, on the cores of this machine or on a cluster, or
one after another in this process without Ray; all of them log to one MLflow server (:func:`mlflow_server`),
and a rerun skips the jobs that store holds as FINISHED (:func:`finished_jobs`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from workflows.grid import ROOT, TAG, Job, client_and_experiment, experiment_name, tracking_uri
from workflows.job import execute_job, from_root

__all__ = ["finished_jobs", "job_costs", "longest_first", "mlflow_server", "run_grid"]


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
        client, experiment = client_and_experiment(uri, experiment_name(grid, preset), create=False)
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
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri(out),
           "--artifacts-destination", str((out / "mlartifacts").resolve()), "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1"]
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
        parser.update({**from_root(job.overrides), "bundle_root": str(bundle)})
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
    """
    One line per finished job, and a progress bar with an ETA (of jobs, at the rate they finish so far); then
    ``after()``, when given (the runner's ``on_done``: exporting the records).
    """

    def __init__(self, total: int, key_metric: str, after: Callable[[], None] | None = None) -> None:
        from tqdm import tqdm

        self.after = after
        self.key_metric, self.write = key_metric, tqdm.write
        self.bar = tqdm(total=total, unit="job", desc="grid", dynamic_ncols=True, file=sys.stderr)

    def done(self, r: Mapping[str, Any]) -> None:
        where = f"{r['variant']} | seed {r['seed']} | fold {r['fold']}"
        if r["status"] == "FAILED":
            failed = f"{where} | FAILED after {r['wall_s'] / 60:.1f} min: {r['error']} (log: {r['log']})"
            self.write(f"{failed}\n{r['traceback']}")
        else:
            value = "—" if r["metric"] is None else f"{r['metric']:.4f}"
            self.write(f"{where} | {self.key_metric} {value} | {r['wall_s'] / 60:.1f} min")
        self.bar.update()
        if self.after is not None:
            self.after()

    def close(self) -> None:
        self.bar.close()


def _failure(job: Job, error: BaseException, grid: Mapping[str, Any], preset: str, uri: str) -> dict[str, Any]:
    """Record a job whose Ray task died without reporting (its worker crashed or was killed) as FAILED."""
    client, experiment = client_and_experiment(uri, experiment_name(grid, preset), create=False)
    run_id = client.create_run(experiment.experiment_id, run_name=job.slug).info.run_id
    tags = {"grid": grid["name"], "preset": preset, "variant": job.variant, "seed": str(job.seed),
            "fold": str(job.fold), "set": json.dumps(job.extra, sort_keys=True), "error": str(error)[-7000:]}
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
    on_done: Callable[[str], None] | None = None,
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
        on_done: called with the store's URI after each job (e.g. to export the records of the finished runs).
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
                print(f"The MLflow server listens on {uri} only: jobs on other machines need --tracking_uri.",
                      flush=True)
        else:
            artifacts = None  # the server's own artifact store
        client_and_experiment(uri, experiment_name(grid, preset), create=True, artifact_location=artifacts)
        server = uri
        progress = _Progress(len(todo), grid["key_metric"], None if on_done is None else lambda: on_done(server))
        stack.callback(progress.close)
        if ray is None:
            results = []
            for job in todo:
                job_spec = {"variant": job.variant, "seed": job.seed, "fold": job.fold, "overrides": job.overrides,
                            "extra": job.extra}
                results.append(execute_job(grid, preset, job_spec, str(out), uri, test_eval, threads))
                progress.done(results[-1])
            return results
        # Workers unpickle execute_job by reference, so they import this package: the repository root goes on
        # their path, wherever the driver was started from (Ray adds only the driver's working directory).
        python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        runtime_env = {"env_vars": {"PYTHONPATH": python_path}}
        # each job's output is in its job.log, and failures come back with their tracebacks
        if address is None:
            # address "local": a new Ray here, even where a `ray start` cluster runs or left its address file
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level="WARNING",
                     log_to_driver=False, runtime_env=runtime_env)
        else:
            ray.init(address=address, logging_level="WARNING", log_to_driver=False, runtime_env=runtime_env)
        stack.callback(ray.shutdown)
        return _run_on_ray(ray, grid, preset, todo, out, uri, test_eval, threads or 1, progress)
