"""
SRBMLFlowHandler: MONAI's ``MLFlowHandler`` for the bundles, composed of this package's parts: the store
(:mod:`.store`), the experiment (:mod:`.experiment`), the run it joins or creates and how runs link
(:mod:`.runs`), the params (:mod:`.run_params`), the tags and config (:mod:`.identity`), buffered metrics
(:mod:`.metric_buffer`), artifact folders (:mod:`.artifacts`), the logged model (:mod:`.logged_model`) and how the
run ends (:mod:`.status`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events
from monai.engines import Trainer
from monai.handlers import MLFlowHandler
from torch import nn

from monai_srb.tracking import runs
from monai_srb.tracking.artifacts import folder_paths, upload_folders
from monai_srb.tracking.experiment import get_or_create_experiment, sqlite_artifact_location
from monai_srb.tracking.identity import NOTE_TAG, log_config, run_note, run_tags
from monai_srb.tracking.logged_model import log_best_model
from monai_srb.tracking.metric_buffer import (
    EpochMean,
    MetricBuffer,
    epoch_metrics,
    iteration_metrics,
    iteration_names,
    loss_values,
)
from monai_srb.tracking.run_data import RunData
from monai_srb.tracking.run_params import RunParams, describe_network, param_value
from monai_srb.tracking.runs import PROCESS_RUN_NAME, RUN_ID_STATE_KEY
from monai_srb.tracking.status import FAILED, end_run
from monai_srb.tracking.store import check_tracking_server, default_tracking_uri

__all__ = ["SRBMLFlowHandler"]


class SRBMLFlowHandler(MLFlowHandler):
    """
    :class:`monai.handlers.MLFlowHandler` for the bundles, built on its public API only (its constructor
    arguments, attributes and event methods; no private method is called or overridden):

    - without ``tracking_uri`` it uses :func:`default_tracking_uri` of ``output_dir``; an ``http(s)://`` URI
      is checked at construction (:func:`check_tracking_server`).
    - a crash marks the run ``FAILED`` (the artifacts written so far are still uploaded) and re-raises.
    - the run id travels in the engine's state (``engine.state.mlflow_run_id``, one of its
      ``state_dict_user_keys``), so it is saved with the trainer in every checkpoint. When a run resumes
      from a checkpoint written by another run, the new run is tagged ``srb.resumed_from_run_id`` and the
      old one ``srb.resumed_by_run_id``, and the old run, if still ``RUNNING`` (its process was killed), is
      marked ``KILLED``.
    - handlers of one process with one ``run_name`` (the trainer's and the validator's) share a run; a
      ``RUNNING`` run left by another (killed) process is never joined (:func:`join_or_create_run`).
    - the run owner (the handler given ``run_params``, ``run_data``, ``experiment_param`` or ``network``) logs the
      params: ``run_params`` (:meth:`RunParams.params`: the tracked values, and the overrides when it holds the config),
      ``experiment_param``, and :func:`describe_network` of ``network`` (class, block count and positions, norm:
      what was built, whatever override built it). With ``run_params`` it logs the configuration under
      ``config/`` (:func:`log_config`: ``merged_config.json`` when ``run_params`` holds the config,
      else the config files as filed and ``run_params.json``), and it tags the run with the bundle name and
      version (``bundle``, ``bundle_version``), the network built (``network``, ``block``, ``srb_positions``), the
      data set (``dataset``: the folder name of ``run_data``'s ``dataset_dir``, or ``synthetic``) and a one-line
      description (``mlflow.note.content``, :func:`run_note`); ``run_data`` is logged as the run's dataset input
      (:meth:`RunData.log`: name, digest of the file list, counts; context ``training`` on a trainer, else
      ``evaluation``). Params hold no machine paths (:meth:`RunParams.params`).
    - every run it creates has MLflow's own tags (:func:`source_tags`: ``mlflow.user``, ``mlflow.source.name``,
      ``mlflow.source.git.commit``), which ``MlflowClient.create_run`` does not add by itself.
    - one step axis per kind of metric (:mod:`.metric_buffer`): per-iteration metrics, the loss and the optimizer
      params, at step = iteration under names ending in ``_iter`` (``train_loss_iter``, ``lr_iter``); per-epoch
      metrics at step = epoch (``global_epoch_transform(epoch)``): the engine's metrics under their own names
      (``val_mean_iou``) and, on a trainer, the epoch's mean loss ``<tag_name>_epoch`` (``train_loss_epoch``: the
      mean over every iteration of the epoch). The per-iteration metrics stay on (``iteration_log=False`` turns
      them and the epoch's mean loss off): a loss spike or a learning-rate schedule inside an epoch shows only
      there, they cost one request per epoch (below), and the grid's records leave them out
      (``workflows.records``). Their names changed: runs before this logged ``train_loss`` (or ``Loss``) and
      ``lr_group_0`` per iteration and no epoch loss.
    - metrics are buffered and sent in batches at each epoch end (:class:`MetricBuffer`): the handler gives MONAI
      its own ``iteration_logger`` and ``epoch_logger``, unless the caller gives theirs (then those log, unbuffered,
      under MONAI's names, and no epoch loss is logged).
    - at :meth:`close`, with ``model_input_shape``, the network with the weights of ``model_checkpoint`` (the
      best checkpoint) is logged as ``model`` (:func:`log_best_model`):
      ``mlflow.pytorch.load_model("runs:/<run id>/model")`` gives the network, ``mlflow.pyfunc.load_model`` (and
      ``mlflow models serve``) a model that takes any batch and spatial size the network takes, casts float16 /
      float64 to float32 and refuses other input with a short message; the run is tagged with the checkpoint's
      sha256 (:data:`CHECKPOINT_SHA256_TAG`).
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
        run_params: what the bundle config records about itself (:class:`RunParams`), read when the run starts.
        run_data: the data the run reads (:class:`RunData`), recorded as its dataset input and ``dataset`` tag.
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
        run_params: RunParams | None = None,
        run_data: RunData | None = None,
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
        self.artifact_folders = folder_paths(artifact_folders)
        self.run_params = run_params
        self.run_data = run_data
        self.given_params = kwargs.get("experiment_param")
        self.owns_run = any(a is not None for a in (run_params, run_data, self.given_params, network))
        self.network_description = {} if network is None else describe_network(network)
        # MONAI's public logging hooks feed the buffer; a caller's own loggers are used as given.
        if kwargs.get("iteration_logger") is None:
            kwargs["iteration_logger"] = self.log_iteration
        if kwargs.get("epoch_logger") is None:
            kwargs["epoch_logger"] = self.log_epoch
        super().__init__(tracking_uri=tracking_uri, run_name=run_name or PROCESS_RUN_NAME, **kwargs)
        self.model_info: Any = None
        self.metric_buffer = MetricBuffer(self.client)
        self.epoch_loss = EpochMean()

    def params(self) -> dict[str, Any]:
        """
        The owner's params: :meth:`RunParams.params`, then ``experiment_param``, then :func:`describe_network` of
        the network (what was built wins over a tracked id of the same name).
        """
        params: dict[str, Any] = {} if self.run_params is None else self.run_params.params()
        params.update(self.given_params or {})
        params.update({key: param_value(value) for key, value in self.network_description.items()})
        return params

    def start(self, engine: Engine) -> None:
        """
        Join or create the run (:func:`join_or_create_run`, in the experiment
        :func:`get_or_create_experiment` gives), then MONAI's ``start`` (params); the run that created
        it records its tags and config.

        Args:
            engine: the engine this handler is attached to.
        """
        created = False
        if not self.cur_run:
            if self.experiment is None:
                # MONAI 1.6 sets artifact_location beside a SQLite store; MONAI 1.4 and 1.5 have no such attribute
                location = getattr(self, "artifact_location", None) or sqlite_artifact_location(
                    str(self.client.tracking_uri)
                )
                self.experiment = get_or_create_experiment(self.client, self.experiment_name, location)
            self.cur_run, created = runs.join_or_create_run(
                self.client, self.experiment.experiment_id, self.run_name
            )
        if self.owns_run:
            self.experiment_param = self.params()  # not at construction: RunParams.config may have been set since
        super().start(engine)
        setattr(engine.state, RUN_ID_STATE_KEY, self.cur_run.info.run_id)
        if self.owns_run and created:
            self._log_run_identity("training" if isinstance(engine, Trainer) else "evaluation")

    def _log_run_identity(self, kind: str) -> None:
        run_id = self.cur_run.info.run_id
        meta = {} if self.run_params is None else self.run_params.meta
        data = self.run_data
        tags = run_tags(meta, self.network_description, None if data is None else data.name)
        tags[NOTE_TAG] = run_note(kind, meta, self.network_description, self.experiment_param or {},
                                  None if data is None else data.name, None if data is None else data.counts())
        if data is not None:
            data.log(self.client, run_id, kind)
        if self.scored_checkpoint is not None:
            tags.update(runs.parent_run_tags(self.client, self.experiment, self.scored_checkpoint))
        for key, value in tags.items():
            self.client.set_tag(run_id, key, value)
        if self.run_params is not None:
            log_config(self.client, run_id, self.run_params, self.network_description)

    def log_iteration(self, engine: Engine) -> None:
        """
        The ``iteration_logger`` MONAI's ``MLFlowHandler`` calls at each iteration: what its default logger logs
        (:func:`iteration_metrics`) under per-iteration names (:func:`iteration_names`), at step = iteration, into
        the buffer.

        Args:
            engine: the engine, at ``ITERATION_COMPLETED``.

        Raises:
            ValueError: when there is something to log but no run (as MONAI raises).
        """
        metrics = iteration_metrics(engine, self.output_transform, self.tag_name, self.optimizer_param_names)
        optimizer = getattr(engine, "optimizer", None)
        groups = 0 if optimizer is None else len(optimizer.param_groups)
        self._buffer(iteration_names(metrics, self.optimizer_param_names, groups), engine.state.iteration)

    def add_epoch_loss(self, engine: Engine) -> None:
        """
        At each iteration of a trainer: add its loss (:func:`loss_values`) to the epoch's mean (:class:`EpochMean`).

        Args:
            engine: the trainer, at ``ITERATION_COMPLETED``.
        """
        self.epoch_loss.add(loss_values(engine.state.output, self.output_transform, self.tag_name))

    def log_epoch(self, engine: Engine) -> None:
        """
        The ``epoch_logger`` MONAI's ``MLFlowHandler`` calls at each epoch end: what its default logger logs
        (:func:`epoch_metrics`) and, on a trainer, the epoch's mean loss (``<tag_name>_epoch``), at step
        ``global_epoch_transform(epoch)``, into the buffer.

        Args:
            engine: the engine, at ``EPOCH_COMPLETED``.

        Raises:
            ValueError: when there is something to log but no run (as MONAI raises).
        """
        metrics = {**epoch_metrics(engine, self.state_attributes), **self.epoch_loss.pop()}
        if metrics:
            self._buffer(metrics, self.global_epoch_transform(engine.state.epoch))

    def _buffer(self, metrics: dict[str, Any], step: int) -> None:
        if not metrics:
            return
        if not self.cur_run:
            raise ValueError("Current Run is not Active to log metrics")
        self.metric_buffer.add(self.cur_run.info.run_id, metrics, step)

    def flush_metrics(self, engine: Engine | None = None) -> None:
        """
        Send the buffered metrics to the run in batches of at most 1000. Called at each epoch end, at
        completion, on a failure and at :meth:`close`, and when the buffer is full or 10 s old.

        Args:
            engine: the engine, when called as an event handler; unused.
        """
        self.metric_buffer.flush()

    def link_resumed_run(self, engine: Engine) -> None:
        """
        At an epoch start: when a checkpoint loaded after :meth:`start` brought another run's id, link the
        two runs and mark the other ``KILLED`` if it is still ``RUNNING`` (:func:`link_resumed_run`); from
        then on the state holds this run's id.

        Args:
            engine: the engine this handler is attached to.
        """
        if not self.cur_run:
            return
        current, previous = self.cur_run.info.run_id, getattr(engine.state, RUN_ID_STATE_KEY, None)
        setattr(engine.state, RUN_ID_STATE_KEY, current)
        if previous is not None and previous != current:
            runs.link_resumed_run(self.client, current, previous)

    def attach(self, engine: Engine) -> None:
        """
        MONAI's event handlers, then :meth:`failed` on an exception, :meth:`link_resumed_run` at each epoch start
        and :meth:`flush_metrics` at each epoch end (after MONAI's epoch log); on a trainer that logs iterations
        with this handler's epoch logger, :meth:`add_epoch_loss` at every iteration (whatever filter
        ``iteration_log`` sets); the run id joins the engine's ``state_dict_user_keys``.

        Args:
            engine: a trainer, validator or evaluator.
        """
        super().attach(engine)
        if self.iteration_log and self.epoch_logger == self.log_epoch and isinstance(engine, Trainer):
            if not engine.has_event_handler(self.add_epoch_loss, Events.ITERATION_COMPLETED):
                engine.add_event_handler(Events.ITERATION_COMPLETED, self.add_epoch_loss)
        if not engine.has_event_handler(self.failed, Events.EXCEPTION_RAISED):
            engine.add_event_handler(Events.EXCEPTION_RAISED, self.failed)
        if RUN_ID_STATE_KEY not in engine.state_dict_user_keys:
            engine.state_dict_user_keys.append(RUN_ID_STATE_KEY)
        if not engine.has_event_handler(self.link_resumed_run, Events.EPOCH_STARTED):
            engine.add_event_handler(Events.EPOCH_STARTED, self.link_resumed_run)
        if not engine.has_event_handler(self.flush_metrics, Events.EPOCH_COMPLETED):
            engine.add_event_handler(Events.EPOCH_COMPLETED, self.flush_metrics)

    def complete(self) -> None:
        """
        Send buffered metrics, upload ``artifacts`` (MONAI's, flat) and ``artifact_folders`` (into their named
        folders, :func:`upload_folders`).
        """
        self.flush_metrics()
        super().complete()
        if self.cur_run:
            upload_folders(self.client, self.cur_run.info.run_id, self.artifact_folders)

    def log_model(self) -> None:
        """
        Log the network, with the weights of ``model_checkpoint`` when that file exists, as the run's MLflow
        model ``model`` (:func:`log_best_model`), registered as ``registered_model_name`` when set.
        Called by :meth:`close`; nothing without ``model_input_shape``.
        """
        if not self.cur_run or self.model_input_shape is None or self.network is None:
            return
        self.model_info = log_best_model(
            self.client, self.cur_run.info.run_id, self.network, self.model_input_shape,
            checkpoint=self.model_checkpoint, registered_model_name=self.registered_model_name,
        )

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
                end_run(self.client, self.cur_run.info.run_id, FAILED)
                self.cur_run = None
        finally:
            super().close()  # with no current run, MONAI's close only releases the store
        raise e
