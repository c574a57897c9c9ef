"""
One job of a grid: train a (variant, seed, fold) through its bundle (:class:`monai.bundle.ConfigWorkflow`),
score its test set when the grid has one, and record it in MLflow with the ``srb.*`` tags, whether it
finished or failed (:func:`execute_job`, which a Ray task or the runner's own process calls).

Each job's run keeps its network as its MLflow model ``model`` (the bundle's ``train#mlflow_handler`` logs it when
training ends), so ``mlflow.pytorch.load_model("runs:/<run id>/model")`` of any row of a results table gives the
network the row scored. The grids set ``train#mlflow_handler#model_checkpoint`` to null: the model holds the last
epoch's weights, whose metrics the tables report, not the best epoch's ``models/model.pt`` that a bundle run logs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from workflows.grid import ROOT, TAG, Job, client_and_experiment, experiment_name

__all__ = ["evaluate_test", "execute_job", "from_root", "run_job"]


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


def from_root(overrides: Mapping[str, Any]) -> dict[str, Any]:
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
    overrides = from_root(job.overrides)
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
    if threads:
        import torch

        torch.set_num_threads(threads)
    j = Job(job["variant"], job["seed"], job["fold"], dict(job["overrides"]), dict(job["extra"]))
    name = experiment_name(grid, preset)
    client, experiment = client_and_experiment(uri, name, create=False)
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
    return {"variant": j.variant, "seed": j.seed, "fold": j.fold, "slug": j.slug,
            "status": "FAILED" if error else "FINISHED", "metric": metric, "wall_s": wall, "error": error,
            "traceback": trace, "log": str(run_dir / "job.log")}


def _ray_node() -> str | None:
    """The Ray node id when this process is a Ray worker, else ``None``."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    return ray.get_runtime_context().get_node_id()
