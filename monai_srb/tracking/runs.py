"""
Which MLflow run a handler writes to, and how runs point at each other: one run per process and run name (the
trainer's and the validator's handlers meet in it; a ``RUNNING`` run left by another, killed, process is never
joined), the run id carried in the trainer's checkpoints, a resumed run linked to the run it resumes, and an
evaluate run nested under the training run that logged the checkpoint it scores.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time

from mlflow import MlflowClient
from mlflow.entities import Experiment, Run
from mlflow.exceptions import MlflowException

from monai_srb.tracking.identity import source_tags
from monai_srb.tracking.status import KILLED, end_run, is_running

__all__ = [
    "CHECKPOINT_SHA256_TAG",
    "PROCESS_RUN_NAME",
    "RUN_ID_STATE_KEY",
    "file_sha256",
    "join_or_create_run",
    "link_resumed_run",
    "parent_run_tags",
]

logger = logging.getLogger(__name__)

# One name per process: the trainer's and validator's handlers meet in one run; another process never joins it.
PROCESS_RUN_NAME = f"run_{time.strftime('%Y%m%d_%H%M%S')}_{os.getpid()}"
# The engine state attribute that carries the MLflow run id into the trainer's checkpoints.
RUN_ID_STATE_KEY = "mlflow_run_id"
# Tag of a training run: the sha256 of the best checkpoint it logged; an evaluate run finds its parent by it.
CHECKPOINT_SHA256_TAG = "srb.checkpoint_sha256"
# Tag of an evaluate run: the sha256 of the checkpoint it scores (not CHECKPOINT_SHA256_TAG: no run's parent).
_SCORED_SHA256_TAG = "srb.scored_checkpoint_sha256"
# Tag of every run a handler creates: a RUNNING run is only joined by a handler of the process that made it.
_PROCESS_TAG = "srb.process"
_PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}"


def file_sha256(path: str) -> str:
    """
    The sha256 of the file ``path``, read in 1 MiB chunks (checkpoints are large).

    Args:
        path: the file.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def join_or_create_run(client: MlflowClient, experiment_id: str, run_name: str) -> tuple[Run, bool]:
    """
    The ``RUNNING`` run ``run_name`` this process created in the experiment, else a new one tagged with the process.

    MONAI's ``MLFlowHandler.start`` joins the latest run that is not ``FINISHED``: a new training would append to a
    ``FAILED`` run, or to the ``RUNNING`` run a killed process left behind (and MLflow then refuses its changed
    params). Only a ``RUNNING`` run of this name made by this process is joined: the trainer's, for the validator's
    handler.

    Args:
        client: the client of the tracking store.
        experiment_id: the experiment.
        run_name: the run's name.

    Returns:
        The run, and whether it was created here (its creator records what it is: params, tags, config). A created
        run has MLflow's own tags (:func:`~monai_srb.tracking.identity.source_tags`), which ``MlflowClient``, unlike
        ``mlflow.start_run``, does not add.
    """
    running = client.search_runs(
        [experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`{_PROCESS_TAG}` = '{_PROCESS_ID}'",
    )
    running = [r for r in running if r.info.run_name == run_name]
    if running:
        return client.get_run(running[0].info.run_id), False
    return client.create_run(experiment_id, run_name=run_name, tags=source_tags({_PROCESS_TAG: _PROCESS_ID})), True


def link_resumed_run(client: MlflowClient, current: str, previous: str) -> None:
    """
    Link run ``current`` to run ``previous`` whose checkpoint it resumed (tags ``srb.resumed_from_run_id`` and
    ``srb.resumed_by_run_id``), and mark ``previous`` ``KILLED`` if it still shows ``RUNNING``. A ``previous`` run
    of another tracking store is only named in ``current``'s tag.

    Args:
        client: the client of the tracking store.
        current: the id of the run that resumed.
        previous: the run id the loaded checkpoint carried.
    """
    client.set_tag(current, "srb.resumed_from_run_id", previous)
    try:
        old = client.get_run(previous)
    except MlflowException:
        return  # the checkpoint comes from another tracking store
    client.set_tag(previous, "srb.resumed_by_run_id", current)
    if is_running(old):
        end_run(client, previous, KILLED)


def parent_run_tags(client: MlflowClient, experiment: Experiment, checkpoint: str) -> dict[str, str]:
    """
    The tags that nest an evaluate run under the training run of ``experiment`` that logged ``checkpoint`` (same
    sha256, :data:`CHECKPOINT_SHA256_TAG`): ``mlflow.parentRunId`` and the scored checkpoint's sha256. Without
    such a run only the sha256 (and a warning); without the file, nothing.

    Args:
        client: the client of the tracking store.
        experiment: the experiment of both runs.
        checkpoint: the checkpoint the evaluate run scores.
    """
    if not os.path.isfile(checkpoint):
        return {}
    sha = file_sha256(checkpoint)
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{CHECKPOINT_SHA256_TAG}` = '{sha}'",
        order_by=["attributes.start_time DESC"],
    )
    if not runs:
        logger.warning(
            "no run of MLflow experiment %r logged checkpoint %s (sha256 %s): this evaluate run is not linked to "
            "a training run.", experiment.name, checkpoint, sha,
        )
        return {_SCORED_SHA256_TAG: sha}
    return {_SCORED_SHA256_TAG: sha, "mlflow.parentRunId": runs[0].info.run_id}
