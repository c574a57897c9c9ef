"""
A grid's finished runs as small JSON records that can be committed beside the results they back, and read back
into an MLflow store on another machine: :func:`export_records` writes one ``<run name>.json`` per FINISHED run
(its status and times, params, tags, per-epoch metric histories and the last validation's per-image scores), and
:func:`import_records` recreates the runs a store lacks, with their original start and end times. A grid that
needs more than one session on machines that do not keep their files goes on from its records:
``run_experiments --records DIR`` imports them first, so the runner skips those jobs, and exports each job that
finishes. The run store itself (checkpoints, logged models, figures) is never committed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workflows.grid import TAG, client_and_experiment, experiment_name

__all__ = ["DETAILS_DIR", "MAX_HISTORY", "export_records", "import_records", "read_details"]

# The folder of per-image scores a run logs as an MLflow artifact (the skin bundle's val_details override).
DETAILS_DIR = "val_details"
# Metrics logged more often than this (per iteration: train_loss_iter, lr_iter; train_loss, lr_group_0 in runs
# before issue 23) are left out of a record: a record keeps what the reports read, the per-epoch metrics
# (validation metrics, train_loss_epoch), not a second copy of the store.
MAX_HISTORY = 200
# MLflow's own bookkeeping tags that a recreated run gets anew or that name a logged model the record lacks.
_SKIPPED_TAGS = ("mlflow.log-model.history",)


def _per_image(text: str) -> dict[str, float]:
    """``{file name: score}`` of a MetricsSaver ``*_raw.csv`` (its ``mean`` column), without the folder."""
    rows = csv.DictReader(io.StringIO(text))
    return {os.path.basename(r["filename"]): float(r["mean"]) for r in rows if r.get("filename")}


def read_details(client: Any, run_id: str) -> dict[str, dict[str, float]]:
    """
    The per-image scores of a run's last validation: ``{metric: {image file name: score}}`` from its
    ``val_details/<metric>_raw.csv`` artifacts; empty when the run logged none.
    """
    try:
        listed = client.list_artifacts(run_id, DETAILS_DIR)
    except Exception:  # a store whose artifacts are gone: the record keeps what the store still has
        return {}
    details: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for item in listed:
            name = os.path.basename(item.path)
            if item.is_dir or not name.endswith("_raw.csv"):
                continue
            local = client.download_artifacts(run_id, item.path, tmp)
            details[name.removesuffix("_raw.csv")] = _per_image(Path(local).read_text())
    return details


def export_records(uri: str, grid: Mapping[str, Any], preset: str, dest: str | os.PathLike) -> list[Path]:
    """
    Write one record per FINISHED tagged run of the preset's experiment in ``uri`` to ``dest/<run name>.json``
    (a record already written for the same run, or the record a run was imported from, is left as it is; a record
    of another run of that name is replaced). Returns the files written.

    Raises:
        ValueError: when the store has no such experiment.
    """
    client, experiment = client_and_experiment(uri, experiment_name(grid, preset), create=False)
    if experiment is None:
        raise ValueError(f"no MLflow experiment {experiment_name(grid, preset)!r} in {uri} to export.")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    runs = client.search_runs([experiment.experiment_id], filter_string="attributes.status = 'FINISHED'",
                              max_results=50000)
    for run in runs:
        if TAG + "variant" not in run.data.tags:
            continue
        if (dest / run.data.tags.get(TAG + "record", "\0")).is_file():
            continue  # imported from this folder: its record is already there, as it was first written
        path = dest / f"{run.info.run_name}.json"
        if path.is_file() and json.loads(path.read_text()).get("run_id") == run.info.run_id:
            continue  # written by an earlier export (the runner exports after every job): a FINISHED run is final
        metrics, dropped = {}, []
        for key in sorted(run.data.metrics):
            history = client.get_metric_history(run.info.run_id, key)
            if len(history) > MAX_HISTORY:
                dropped.append(key)
                continue
            ordered = sorted(history, key=lambda m: (m.step, m.timestamp))
            metrics[key] = [[m.step, m.timestamp, m.value] for m in ordered]
        record = {
            "run_name": run.info.run_name,
            "run_id": run.info.run_id,
            "experiment": experiment.name,
            "status": run.info.status,
            "start_time": run.info.start_time,
            "end_time": run.info.end_time,
            "params": dict(sorted(run.data.params.items())),
            "tags": {k: v for k, v in sorted(run.data.tags.items()) if k not in _SKIPPED_TAGS},
            "metrics": metrics,
            "metrics_left_out": dropped,
            "details": read_details(client, run.info.run_id),
        }
        path.write_text(json.dumps(record, indent=1) + "\n")
        written.append(path)
    return written


def import_records(src: str | os.PathLike, uri: str, grid: Mapping[str, Any], preset: str) -> list[str]:
    """
    Recreate in the store ``uri`` each record in ``src`` whose run the preset's experiment does not hold as
    FINISHED (by run name): same run name, start and end times, status, params, tags (plus ``srb.record``, the
    record's file name), metric histories (steps and timestamps) and per-image scores (``val_details``). Returns
    the run names imported.

    Raises:
        ValueError: when ``src`` is not a folder, or a record belongs to another experiment (naming the file).
    """
    src = Path(src)
    if not src.is_dir():
        raise ValueError(f"records folder {str(src)!r} does not exist.")
    from mlflow.entities import Metric, Param

    name = experiment_name(grid, preset)
    # as the runner's own store keeps them: artifacts beside a SQLite file, in mlartifacts/
    artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri() \
        if uri.startswith("sqlite:///") else None
    client, experiment = client_and_experiment(uri, name, create=True, artifact_location=artifacts)
    present = {r.info.run_name for r in client.search_runs(
        [experiment.experiment_id], filter_string="attributes.status = 'FINISHED'", max_results=50000)}
    imported = []
    for path in sorted(src.glob("*.json")):
        record = json.loads(path.read_text())
        if record.get("experiment") != name:
            raise ValueError(f"record {str(path)!r} is of experiment {record.get('experiment')!r}, expected {name!r}.")
        if record["run_name"] in present:
            continue
        tags = {**record["tags"], TAG + "record": path.name}
        run = client.create_run(experiment.experiment_id, start_time=record["start_time"], tags=tags,
                                run_name=record["run_name"])
        run_id = run.info.run_id
        metrics = [Metric(key, value, timestamp, step) for key, history in record["metrics"].items()
                   for step, timestamp, value in history]
        params = [Param(k, v) for k, v in record["params"].items()]
        # log_batch's limits: 100 params and 1000 entries in all per call
        for start in range(0, len(params), 100):
            client.log_batch(run_id, params=params[start:start + 100])
        for start in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[start:start + 1000])
        for metric, scores in record.get("details", {}).items():
            rows = "".join(f"{image},{score!r}\n" for image, score in scores.items())
            client.log_text(run_id, f"filename,mean\n{rows}", f"{DETAILS_DIR}/{metric}_raw.csv")
        client.set_terminated(run_id, record["status"], end_time=record["end_time"])
        imported.append(record["run_name"])
    return imported
