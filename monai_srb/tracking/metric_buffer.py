"""
Metrics sent in batches: MONAI's ``MLFlowHandler`` sends one request per iteration for the loss and one for each
optimizer param, which over HTTP slowed the grids. :class:`MetricBuffer` holds them and sends at most 1000 (MLflow's
limit per request) at a time: at each epoch end and at least every 10 s. :func:`iteration_metrics` and
:func:`epoch_metrics` give what MONAI's default iteration and epoch logs log, with the same keys and steps, so that
the handler's ``iteration_logger`` and ``epoch_logger`` (MONAI's public hooks) can feed the buffer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from ignite.engine import Engine
from mlflow import MlflowClient
from mlflow.entities import Metric
from monai.utils import flatten_dict

__all__ = ["FLUSH_INTERVAL_S", "MAX_METRICS_PER_BATCH", "MetricBuffer", "epoch_metrics", "iteration_metrics"]

# MLflow's limit of metrics per log_batch request.
MAX_METRICS_PER_BATCH = 1000
# The longest a metric waits in the buffer (checked when the next one arrives), so a slow epoch still shows progress.
FLUSH_INTERVAL_S = 10.0


class MetricBuffer:
    """
    Metrics of an MLflow run, held until :meth:`flush` sends them in batches of at most ``max_batch``; :meth:`add`
    flushes by itself when the buffer is full or its oldest flush is ``interval_s`` old.

    Args:
        client: the client of the run's tracking store.
        max_batch: metrics per request.
        interval_s: seconds after which :meth:`add` flushes.
    """

    def __init__(
        self, client: MlflowClient, max_batch: int = MAX_METRICS_PER_BATCH, interval_s: float = FLUSH_INTERVAL_S
    ) -> None:
        self.client = client
        self.max_batch = max_batch
        self.interval_s = interval_s
        self.pending: list[Metric] = []
        self._run_id: str | None = None
        self._last_flush = time.monotonic()

    def add(self, run_id: str, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """
        Hold ``metrics`` (nested dicts flattened, as MONAI flattens them) for run ``run_id`` at ``step``.

        Args:
            run_id: the run.
            metrics: name -> value.
            step: the metrics' step; ``None`` is 0.
        """
        if self._run_id not in (None, run_id):
            self.flush()  # what the previous run holds goes to that run
        self._run_id = run_id
        timestamp = int(time.time() * 1000)
        self.pending += [Metric(key, value, timestamp, step or 0) for key, value in flatten_dict(metrics).items()]
        if len(self.pending) >= self.max_batch or time.monotonic() - self._last_flush > self.interval_s:
            self.flush()

    def flush(self) -> None:
        """Send what is held to its run, in batches of at most ``max_batch``."""
        if self._run_id is not None:
            for i in range(0, len(self.pending), self.max_batch):
                batch = self.pending[i : i + self.max_batch]
                self.client.log_batch(run_id=self._run_id, metrics=batch, params=[], tags=[])
        self.pending = []
        self._last_flush = time.monotonic()


def iteration_metrics(
    engine: Engine, output_transform: Callable[[Any], Any], tag_name: str, optimizer_param_names: Sequence[str]
) -> dict[str, Any]:
    """
    What MONAI's ``MLFlowHandler`` logs at an iteration (at step ``engine.state.iteration``): the loss,
    ``output_transform(engine.state.output)`` (named ``tag_name`` unless it is a dict), then, when the engine has an
    optimizer, each of ``optimizer_param_names`` per param group as ``<name>_group_<i>``. Nothing when the loss is
    ``None``.

    Args:
        engine: the engine, at ``ITERATION_COMPLETED``.
        output_transform: the handler's ``output_transform``.
        tag_name: the handler's ``tag_name``.
        optimizer_param_names: the handler's ``optimizer_param_names``.
    """
    loss = output_transform(engine.state.output)
    if loss is None:
        return {}
    if not isinstance(loss, dict):
        loss = {tag_name: loss.item() if isinstance(loss, torch.Tensor) else loss}
    metrics = dict(loss)
    optimizer = getattr(engine, "optimizer", None)
    if optimizer is not None:
        for name in optimizer_param_names:
            metrics.update({f"{name}_group_{i}": float(group[name]) for i, group in enumerate(optimizer.param_groups)})
    return metrics


def epoch_metrics(engine: Engine, state_attributes: Sequence[str] | None) -> dict[str, Any]:
    """
    What MONAI's ``MLFlowHandler`` logs at an epoch end: ``engine.state.metrics`` and the ``state_attributes`` of
    ``engine.state``; nothing when there are no metrics.

    Args:
        engine: the engine, at ``EPOCH_COMPLETED``.
        state_attributes: the handler's ``state_attributes``.
    """
    if not engine.state.metrics:
        return {}
    metrics = dict(engine.state.metrics)
    metrics.update({attr: getattr(engine.state, attr, None) for attr in state_attributes or ()})
    return metrics
