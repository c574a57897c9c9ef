"""MLflow glue: MONAI's MLFlowHandler with a usable default store, failed runs marked FAILED and resumed runs linked."""

from __future__ import annotations

import os
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

import mlflow
from ignite.engine import Engine, Events
from monai.handlers import MLFlowHandler

__all__ = [
    "PROCESS_RUN_NAME",
    "RUN_ID_STATE_KEY",
    "SRBMLFlowHandler",
    "check_tracking_server",
    "config_params",
    "default_tracking_uri",
    "flatten_config",
]


# One name per process: the trainer's and validator's handlers meet in one run; another process never joins it.
PROCESS_RUN_NAME = f"run_{time.strftime('%Y%m%d_%H%M%S')}_{os.getpid()}"
# The engine state attribute that carries the MLflow run id into the trainer's checkpoints.
RUN_ID_STATE_KEY = "mlflow_run_id"


def check_tracking_server(tracking_uri: str, timeout: float = 5.0) -> None:
    """
    Fail fast when an ``http(s)://`` tracking URI does not answer: MLflow's own client retries a dead
    server for about 4 minutes before it raises. Any HTTP answer (even an error status) counts as alive;
    other URIs (``sqlite:``, ``file:``, paths) are not checked.

    Args:
        tracking_uri: the MLflow tracking URI.
        timeout: seconds to wait for the connection and the answer.

    Raises:
        ValueError: when ``timeout`` is not positive, or nothing answers at ``tracking_uri`` within it.
    """
    if not timeout > 0:
        raise ValueError(f"tracking_timeout must be a positive number of seconds, got {timeout!r}.")
    if not tracking_uri.lower().startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(tracking_uri, timeout=timeout):
            pass
    except urllib.error.HTTPError as answer:
        answer.close()
    except OSError as e:  # URLError (refused, unknown host), TimeoutError
        if isinstance(getattr(e, "reason", e), ssl.SSLError):
            return  # a TLS server answers; MLflow's own TLS settings decide whether it is trusted
        raise ValueError(
            f"MLflow tracking_uri {tracking_uri!r} does not answer within {timeout} s ({getattr(e, 'reason', e)}): "
            "start `mlflow server` there, correct the URI, or leave tracking_uri unset for the local SQLite store."
        ) from e


def default_tracking_uri(output_dir: str) -> str:
    """
    ``sqlite:///<output_dir>/mlflow.db``: MLflow 3 deprecates the file store that MONAI's default
    ``file:`` URI points at, so the bundles default to a SQLite store next to their other outputs.
    """
    os.makedirs(output_dir, exist_ok=True)
    return f"sqlite:///{os.path.abspath(os.path.join(output_dir, 'mlflow.db'))}"


def flatten_config(config: Mapping[str, Any], prefix: str = "", max_len: int = 500) -> dict[str, str]:
    """
    Flatten a (parsed or raw) bundle config into ``{"a.b.c": "value"}`` MLflow params.

    Values are stringified and cut to ``max_len`` characters (MLflow's param value limit is larger,
    but long expressions carry no information worth a param).
    """
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, f"{name}.", max_len))
        elif isinstance(value, (list, tuple)) and any(isinstance(v, Mapping) for v in value):
            for i, v in enumerate(value):
                if isinstance(v, Mapping):
                    flat.update(flatten_config(v, f"{name}.{i}.", max_len))
                else:
                    flat[f"{name}.{i}"] = str(v)[:max_len]
        else:
            flat[name] = str(value)[:max_len]
    return flat


def config_params(config_files: str | Sequence[str], resolved: Mapping[str, Any] | None = None) -> dict[str, str]:
    """
    MLflow params for a bundle run: the flattened raw config of ``config_files`` (later files override
    earlier ones, as ``monai.bundle run`` merges them), with the top-level ids in ``resolved`` replaced
    by their values in this run (so command-line overrides such as ``--epochs 3`` are what is logged).

    Args:
        config_files: the bundle config file(s) of the run.
        resolved: top-level id -> value actually used, e.g. ``{"epochs": @epochs}`` in a config.
    """
    from monai.bundle import ConfigParser

    raw = ConfigParser.load_config_files(config_files)
    raw.update(dict(resolved or {}))
    return flatten_config(raw)


class SRBMLFlowHandler(MLFlowHandler):
    """
    :class:`monai.handlers.MLFlowHandler` that also marks the run ``FAILED`` (and still uploads the
    artifacts written so far) when the engine raises, then re-raises, so a crashed training is not left
    ``RUNNING`` in the MLflow UI. Without ``tracking_uri`` it uses :func:`default_tracking_uri` of
    ``output_dir``; an ``http(s)://`` URI is checked at construction (:func:`check_tracking_server`).

    The run id travels in the engine's state (``engine.state.mlflow_run_id``, one of its
    ``state_dict_user_keys``), so it is saved with the trainer in every checkpoint. When a run resumes
    from a checkpoint written by another run, the new run is tagged ``srb.resumed_from_run_id`` and the
    old one ``srb.resumed_by_run_id``, and the old run, if still ``RUNNING`` (its process was killed), is
    marked ``KILLED``.

    Args:
        output_dir: folder of the run's outputs; holds the default SQLite store.
        tracking_uri: MLflow tracking URI (``sqlite:///...``, ``http://host:port``); ``None`` for the default.
        run_name: name of the MLflow run; ``None`` for :data:`PROCESS_RUN_NAME`.
        tracking_timeout: seconds an ``http(s)://`` tracking server has to answer before the run fails.
        kwargs: the arguments of :class:`monai.handlers.MLFlowHandler`.

    Raises:
        ValueError: when an ``http(s)://`` ``tracking_uri`` does not answer within ``tracking_timeout``.
    """

    def __init__(
        self,
        output_dir: str = ".",
        tracking_uri: str | None = None,
        run_name: str | None = None,
        tracking_timeout: float = 5.0,
        **kwargs: Any,
    ) -> None:
        if tracking_uri:
            check_tracking_server(tracking_uri, tracking_timeout)
        super().__init__(
            tracking_uri=tracking_uri or default_tracking_uri(output_dir), run_name=run_name or PROCESS_RUN_NAME, **kwargs
        )

    def start(self, engine: Engine) -> None:
        # MONAI joins the latest run that is not FINISHED: a new training would append to a FAILED run, or
        # to the RUNNING run a killed process left behind (and MLflow then refuses its changed params).
        # Join only a RUNNING run of this process's run name: the trainer's, for the validator's handler.
        if not self.cur_run:
            self._set_experiment()
            running = self.client.search_runs(
                [self.experiment.experiment_id], filter_string="attributes.status = 'RUNNING'"
            )
            running = [r for r in running if r.info.run_name == self.run_name]
            if running:
                self.cur_run = self.client.get_run(running[0].info.run_id)
            else:
                self.cur_run = self.client.create_run(self.experiment.experiment_id, run_name=self.run_name)
        super().start(engine)
        setattr(engine.state, RUN_ID_STATE_KEY, self.cur_run.info.run_id)

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

    def failed(self, engine: Engine, e: Exception) -> None:
        try:
            if self.cur_run:
                self.complete()
                self.client.set_terminated(self.cur_run.info.run_id, mlflow.entities.RunStatus.to_string(mlflow.entities.RunStatus.FAILED))
                self.cur_run = None
        finally:
            self._dispose_sqlite_store()
        raise e
