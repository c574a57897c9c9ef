"""
SRBMLFlowHandler: MONAI's MLFlowHandler with a usable default store (see :mod:`.tracking_store`), failed
runs marked FAILED, resumed runs linked, the network actually built in params and tags (see :mod:`.run_params`),
the best checkpoint logged as an MLflow model and evaluate runs linked to the training run they score.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import torch
from ignite.engine import Engine, Events
from monai.bundle import ConfigParser
from monai.handlers import MLFlowHandler
from monai.utils import flatten_dict
from torch import nn

from monai_srb.handlers.logged_model import log_network
from monai_srb.handlers.run_params import _param_value, _running_parser, _unwrap, describe_network
from monai_srb.handlers.tracking_store import check_tracking_server, default_tracking_uri

__all__ = ["CHECKPOINT_SHA256_TAG", "PROCESS_RUN_NAME", "RUN_ID_STATE_KEY", "SRBMLFlowHandler"]

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
# MONAI sends one request per iteration (the loss, then each optimizer param): metrics are buffered and sent
# in batches of at most MLflow's 1000 metrics, at each epoch end and at least every _FLUSH_INTERVAL_S seconds.
_MAX_METRICS_PER_BATCH = 1000
_FLUSH_INTERVAL_S = 10.0


@functools.lru_cache(maxsize=1)
def _git_commit() -> str | None:
    """The commit of the source checkout this package runs from, or ``None`` (an installed wheel, no git)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        answer = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if answer.returncode != 0:
        return None
    return answer.stdout.strip() or None


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _pip_requirements() -> list[str]:
    """What the logged model needs, pinned to this environment (given, so MLflow does not probe for it)."""
    # local version labels (+cpu, +cu121) are not on PyPI
    return [f"{name}=={importlib.metadata.version(name).split('+')[0]}" for name in ("torch", "monai", "monai_srb")]


class SRBMLFlowHandler(MLFlowHandler):
    """
    :class:`monai.handlers.MLFlowHandler` for the bundles, built on its public API only:

    - without ``tracking_uri`` it uses :func:`default_tracking_uri` of ``output_dir``; an ``http(s)://`` URI
      is checked at construction (:func:`check_tracking_server`).
    - a crash marks the run ``FAILED`` (the artifacts written so far are still uploaded) and re-raises.
    - the run id travels in the engine's state (``engine.state.mlflow_run_id``, one of its
      ``state_dict_user_keys``), so it is saved with the trainer in every checkpoint. When a run resumes
      from a checkpoint written by another run, the new run is tagged ``srb.resumed_from_run_id`` and the
      old one ``srb.resumed_by_run_id``, and the old run, if still ``RUNNING`` (its process was killed), is
      marked ``KILLED``.
    - handlers of one process with one ``run_name`` (the trainer's and the validator's) share a run; a
      ``RUNNING`` run left by another (killed) process is never joined.
    - the run owner (the handler given ``experiment_param`` or ``network``) logs the merged config that runs (the files
      after overrides, read from the bundle's parser) as ``config/merged_config.json``, and tags the run with
      the bundle name and version (``bundle``, ``bundle_version``), the network built (``network``,
      ``block``, ``srb_positions``), the data set (``dataset``: the folder name of the ``dataset_dir``
      param, or ``synthetic``) and the git commit (``mlflow.source.git.commit``) when there is one.
    - ``network`` adds :func:`describe_network` to the params (class, block count and positions, norm: what
      was built, whatever override built it).
    - at :meth:`close`, with ``model_input_shape``, the network with the weights of ``model_checkpoint`` (the
      best checkpoint) is logged as ``model`` (:mod:`.logged_model`): ``mlflow.pytorch.load_model("runs:/<run
      id>/model")`` gives the network, ``mlflow.pyfunc.load_model`` (and ``mlflow models serve``) a model that
      takes any batch and spatial size the network takes, casts float16 / float64 to float32 and refuses other
      input with a short message; the run is tagged with the checkpoint's sha256 (:data:`CHECKPOINT_SHA256_TAG`).
    - ``scored_checkpoint`` (an evaluate run) links the run to the training run of the experiment that
      logged that checkpoint (same sha256): the MLflow tag ``mlflow.parentRunId``, so the evaluate run shows
      nested under it.
    - ``artifact_folders`` are uploaded at completion (and on a crash) into named folders.

    Args:
        output_dir: folder of the run's outputs; holds the default SQLite store.
        tracking_uri: MLflow tracking URI (``sqlite:///...``, ``http://host:port``); ``None`` for the default.
        run_name: name of the MLflow run; ``None`` for :data:`PROCESS_RUN_NAME`.
        tracking_timeout: seconds an ``http(s)://`` tracking server has to answer before the run fails.
        network: the network trained or evaluated: described in the params and tags, and the model logged.
        model_input_shape: (batch, channels, *spatial) of the logged model's input example (the model takes other
            batch and spatial sizes); ``None`` logs no model.
        model_checkpoint: the best checkpoint (a state dict, or one under ``"model"``/``"network"``) loaded
            into a copy of ``network`` before it is logged; ``None`` or a missing file logs ``network`` as it is.
        registered_model_name: also register the logged model under this name in the Model Registry.
        scored_checkpoint: the checkpoint an evaluate run scores; links the run to the run that logged it.
        artifact_folders: MLflow folder -> file(s) or folder(s) to upload into it, e.g.
            ``{"checkpoints": "runs/models/model.pt", "figures": "runs/figures"}``; missing paths are skipped.
        kwargs: the arguments of :class:`monai.handlers.MLFlowHandler`.

    Raises:
        ValueError: when an ``http(s)://`` ``tracking_uri`` does not answer within ``tracking_timeout``, or
            ``model_input_shape`` is given without ``network``.
    """

    def __init__(
        self,
        output_dir: str = ".",
        tracking_uri: str | None = None,
        run_name: str | None = None,
        tracking_timeout: float = 5.0,
        network: nn.Module | None = None,
        model_input_shape: Sequence[int] | None = None,
        model_checkpoint: str | None = None,
        registered_model_name: str | None = None,
        scored_checkpoint: str | None = None,
        artifact_folders: Mapping[str, str | Sequence[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        if tracking_uri:
            check_tracking_server(tracking_uri, tracking_timeout)
        tracking_uri = tracking_uri or default_tracking_uri(output_dir)
        if tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        if model_input_shape is not None and network is None:
            raise ValueError(f"model_input_shape {list(model_input_shape)} needs the network to log, got network=None.")
        self.network = network
        self.model_input_shape = None if model_input_shape is None else [int(s) for s in model_input_shape]
        self.model_checkpoint = model_checkpoint
        self.registered_model_name = registered_model_name
        self.scored_checkpoint = scored_checkpoint
        self.artifact_folders = {
            folder: [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
            for folder, paths in (artifact_folders or {}).items()
        }
        params = kwargs.pop("experiment_param", None)
        self.owns_run = params is not None or network is not None
        self.network_description = {} if network is None else describe_network(network)
        if self.owns_run:
            params = {**dict(params or {}), **{k: _param_value(v) for k, v in self.network_description.items()}}
        parser = _running_parser() if self.owns_run else None
        self.run_config = None if parser is None else copy.deepcopy(parser.get())
        super().__init__(
            tracking_uri=tracking_uri, run_name=run_name or PROCESS_RUN_NAME, experiment_param=params, **kwargs
        )
        self.model_info: Any = None
        self._pending_metrics: list[mlflow.entities.Metric] = []
        self._last_flush = time.monotonic()

    def _log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Buffer ``metrics`` for :meth:`flush_metrics` (MONAI's handler sends each call as one request)."""
        if not self.cur_run:
            raise ValueError("Current Run is not Active to log metrics")
        timestamp = int(time.time() * 1000)
        self._pending_metrics += [
            mlflow.entities.Metric(key, value, timestamp, step or 0) for key, value in flatten_dict(metrics).items()
        ]
        full = len(self._pending_metrics) >= _MAX_METRICS_PER_BATCH
        if full or time.monotonic() - self._last_flush > _FLUSH_INTERVAL_S:
            self.flush_metrics()

    def flush_metrics(self, engine: Engine | None = None) -> None:
        """
        Send the buffered metrics to the run in batches of at most 1000. Called at each epoch end, at
        completion, on a failure and at :meth:`close`, and when the buffer is full or 10 s old.
        """
        if self.cur_run and self._pending_metrics:
            run_id = self.cur_run.info.run_id
            for i in range(0, len(self._pending_metrics), _MAX_METRICS_PER_BATCH):
                batch = self._pending_metrics[i : i + _MAX_METRICS_PER_BATCH]
                self.client.log_batch(run_id=run_id, metrics=batch, params=[], tags=[])
        self._pending_metrics = []
        self._last_flush = time.monotonic()

    def _get_or_create_experiment(self) -> Any:
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            return experiment
        uri = str(self.client.tracking_uri)
        # artifacts beside a SQLite store, whatever the working directory (MLflow's default is ./mlruns)
        location = None
        if uri.startswith("sqlite:///"):
            location = Path(uri[len("sqlite:///") :]).parent.joinpath("mlruns").as_uri()
        try:
            return self.client.get_experiment(
                self.client.create_experiment(self.experiment_name, artifact_location=location)
            )
        except mlflow.exceptions.MlflowException:
            experiment = self.client.get_experiment_by_name(self.experiment_name)  # another process made it first
            if experiment is None:
                raise
            return experiment

    def start(self, engine: Engine) -> None:
        # MONAI joins the latest run that is not FINISHED: a new training would append to a FAILED run, or
        # to the RUNNING run a killed process left behind (and MLflow then refuses its changed params).
        # Join only a RUNNING run of this run name made by this process: the trainer's, for the validator's handler.
        created = False
        if not self.cur_run:
            if self.experiment is None:
                self.experiment = self._get_or_create_experiment()
            running = self.client.search_runs(
                [self.experiment.experiment_id],
                filter_string=f"attributes.status = 'RUNNING' and tags.`{_PROCESS_TAG}` = '{_PROCESS_ID}'",
            )
            running = [r for r in running if r.info.run_name == self.run_name]
            if running:
                self.cur_run = self.client.get_run(running[0].info.run_id)
            else:
                self.cur_run = self.client.create_run(
                    self.experiment.experiment_id, run_name=self.run_name, tags={_PROCESS_TAG: _PROCESS_ID}
                )
                created = True
        super().start(engine)
        setattr(engine.state, RUN_ID_STATE_KEY, self.cur_run.info.run_id)
        if self.owns_run and created:
            self._log_run_identity()

    def _log_run_identity(self) -> None:
        run_id = self.cur_run.info.run_id
        tags: dict[str, Any] = {}
        meta = (self.run_config or {}).get(ConfigParser.meta_key) or {}
        if meta.get("name"):
            tags["bundle"] = meta["name"]
        if meta.get("version"):
            tags["bundle_version"] = meta["version"]
        for key in ("network", "block", "srb_positions"):
            if key in self.network_description:
                tags[key] = self.network_description[key]
        if "dataset_dir" in (self.experiment_param or {}):
            folder = str(self.experiment_param["dataset_dir"])
            tags["dataset"] = "synthetic" if folder in ("None", "") else Path(folder).name
        if _git_commit():
            tags["mlflow.source.git.commit"] = _git_commit()
        if self.scored_checkpoint is not None:
            tags.update(self._parent_run_tags(self.scored_checkpoint))
        for key, value in tags.items():
            self.client.set_tag(run_id, key, _param_value(value))
        if self.run_config is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp, "merged_config.json")
                path.write_text(json.dumps(self.run_config, indent=4, default=str))
                self.client.log_artifact(run_id, str(path), "config")

    def _parent_run_tags(self, checkpoint: str) -> dict[str, str]:
        if not os.path.isfile(checkpoint):
            return {}
        sha = _sha256(checkpoint)
        runs = self.client.search_runs(
            [self.experiment.experiment_id],
            filter_string=f"tags.`{CHECKPOINT_SHA256_TAG}` = '{sha}'",
            order_by=["attributes.start_time DESC"],
        )
        if not runs:
            logger.warning(
                "no run of MLflow experiment %r logged checkpoint %s (sha256 %s): this evaluate run is not linked to "
                "a training run.", self.experiment_name, checkpoint, sha,
            )
            return {_SCORED_SHA256_TAG: sha}
        return {_SCORED_SHA256_TAG: sha, "mlflow.parentRunId": runs[0].info.run_id}

    def link_resumed_run(self, engine: Engine) -> None:
        """
        At an epoch start: when a checkpoint loaded after :meth:`start` brought another run's id, link the
        two runs and mark the other ``KILLED`` if it is still ``RUNNING``; from then on the state holds this run's id.

        Args:
            engine: the engine this handler is attached to.
        """
        if not self.cur_run:
            return
        current, previous = self.cur_run.info.run_id, getattr(engine.state, RUN_ID_STATE_KEY, None)
        setattr(engine.state, RUN_ID_STATE_KEY, current)
        if previous is None or previous == current:
            return
        self.client.set_tag(current, "srb.resumed_from_run_id", previous)
        try:
            old = self.client.get_run(previous)
        except mlflow.exceptions.MlflowException:
            return  # the checkpoint comes from another tracking store
        self.client.set_tag(previous, "srb.resumed_by_run_id", current)
        if old.info.status == mlflow.entities.RunStatus.to_string(mlflow.entities.RunStatus.RUNNING):
            self.client.set_terminated(previous, mlflow.entities.RunStatus.to_string(mlflow.entities.RunStatus.KILLED))

    def attach(self, engine: Engine) -> None:
        super().attach(engine)
        if not engine.has_event_handler(self.failed, Events.EXCEPTION_RAISED):
            engine.add_event_handler(Events.EXCEPTION_RAISED, self.failed)
        if RUN_ID_STATE_KEY not in engine.state_dict_user_keys:
            engine.state_dict_user_keys.append(RUN_ID_STATE_KEY)
        if not engine.has_event_handler(self.link_resumed_run, Events.EPOCH_STARTED):
            engine.add_event_handler(Events.EPOCH_STARTED, self.link_resumed_run)
        if not engine.has_event_handler(self.flush_metrics, Events.EPOCH_COMPLETED):
            engine.add_event_handler(Events.EPOCH_COMPLETED, self.flush_metrics)  # after MONAI's epoch log

    def complete(self) -> None:
        """
        Send buffered metrics, upload ``artifacts`` (MONAI's, flat) and ``artifact_folders`` (into their named
        folders).
        """
        self.flush_metrics()
        super().complete()
        if not self.cur_run:
            return
        run_id = self.cur_run.info.run_id
        for folder, paths in self.artifact_folders.items():
            for path in map(str, paths):
                if os.path.isdir(path):
                    self.client.log_artifacts(run_id, path, folder)
                elif os.path.isfile(path):
                    self.client.log_artifact(run_id, path, folder)

    def log_model(self) -> None:
        """
        Log the network, with the weights of ``model_checkpoint`` when that file exists, as the run's MLflow
        model ``model`` (:func:`~monai_srb.handlers.logged_model.log_network`: the ``pytorch`` flavour, a
        ``python_function`` flavour that checks and converts its input, an all-zero input example of
        ``model_input_shape``, an output signature with -1 for batch and spatial dims), registered as
        ``registered_model_name`` when set. Called by :meth:`close`.
        """
        if not self.cur_run or self.model_input_shape is None or self.network is None:
            return
        run_id = self.cur_run.info.run_id
        network = copy.deepcopy(_unwrap(self.network)).cpu().eval()
        if self.model_checkpoint and os.path.isfile(self.model_checkpoint):
            state = torch.load(self.model_checkpoint, map_location="cpu", weights_only=True)
            for key in ("model", "network"):
                if isinstance(state.get(key), Mapping):
                    state = state[key]
                    break
            network.load_state_dict(state)
            self.client.set_tag(run_id, CHECKPOINT_SHA256_TAG, _sha256(self.model_checkpoint))
        elif self.model_checkpoint:
            logger.warning("best checkpoint %s not found: the MLflow model holds the last weights.",
                           self.model_checkpoint)
        # log_model logs to the fluent API's active run of the global tracking URI: point both at this run,
        # then restore the URI (set_tracking_uri also sets MLFLOW_TRACKING_URI, which MONAI's handlers read first).
        previous, previous_env = mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(self.client.tracking_uri)
        try:
            with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
                self.model_info = log_network(
                    network,
                    self.model_input_shape,
                    registered_model_name=self.registered_model_name,
                    pip_requirements=_pip_requirements(),
                )
        finally:
            mlflow.set_tracking_uri(previous_env)  # None: unset again
            if mlflow.get_tracking_uri() != previous:
                mlflow.set_tracking_uri(previous)

    def close(self) -> None:
        """
        Send buffered metrics, log the model (:meth:`log_model`), then end the run as ``FINISHED`` (MONAI's
        ``close``).
        """
        self.flush_metrics()
        self.log_model()
        super().close()

    def failed(self, engine: Engine, e: Exception) -> None:
        """
        At an exception: upload what is written so far, mark the run ``FAILED`` (no model is logged) and re-raise.

        Args:
            engine: the engine that raised.
            e: the exception.
        """
        try:
            if self.cur_run:
                self.complete()
                self.client.set_terminated(
                    self.cur_run.info.run_id, mlflow.entities.RunStatus.to_string(mlflow.entities.RunStatus.FAILED)
                )
                self.cur_run = None
        finally:
            super().close()  # with no current run, MONAI's close only releases the store
        raise e
