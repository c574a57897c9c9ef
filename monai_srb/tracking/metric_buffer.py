"""
Metrics sent in batches, one step axis per kind of metric.

Batches: MONAI's ``MLFlowHandler`` sends one request per iteration for the loss and one for each optimizer param,
which over HTTP slowed the grids. :class:`MetricBuffer` holds them and sends at most 1000 (MLflow's limit per
request) at a time: at each epoch end and at least every 10 s. :func:`iteration_metrics` and :func:`epoch_metrics`
give what MONAI's default iteration and epoch logs log, so that the handler's ``iteration_logger`` and
``epoch_logger`` (MONAI's public hooks) can feed the buffer.

Step axes: MONAI logs the loss and the learning rate at step = iteration and the validation metrics at step = epoch
under names that do not say which, so MLflow's charts put iteration 40 and epoch 40 on one axis. Here a name says
its axis: per-iteration metrics end in :data:`ITERATION_SUFFIX` (:func:`iteration_names`: ``train_loss_iter``,
``lr_iter``), the epoch's mean loss in :data:`EPOCH_SUFFIX` (``train_loss_epoch``, :class:`EpochMean`), and the
validation metrics, logged at step = epoch, keep their names (``val_mean_iou``).
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

__all__ = [
    "EPOCH_SUFFIX",
    "FLUSH_INTERVAL_S",
    "ITERATION_SUFFIX",
    "MAX_METRICS_PER_BATCH",
    "EpochMean",
    "MetricBuffer",
    "epoch_metrics",
    "iteration_metrics",
    "iteration_names",
    "loss_values",
]

# MLflow's limit of metrics per log_batch request.
MAX_METRICS_PER_BATCH = 1000
# The longest a metric waits in the buffer (checked when the next one arrives), so a slow epoch still shows progress.
FLUSH_INTERVAL_S = 10.0
# The end of a per-iteration metric's name (step = iteration), and of the epoch's mean loss (step = epoch).
ITERATION_SUFFIX = "_iter"
EPOCH_SUFFIX = "_epoch"


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


def loss_values(output: Any, output_transform: Callable[[Any], Any], tag_name: str) -> dict[str, float]:
    """
    The loss of one iteration as MONAI's ``MLFlowHandler`` names it: ``output_transform(output)``, named ``tag_name``
    unless it is a dict (then its items); nothing when it is ``None``.

    Args:
        output: the engine's ``state.output``.
        output_transform: the handler's ``output_transform``.
        tag_name: the handler's ``tag_name``.
    """
    loss = output_transform(output)
    if loss is None:
        return {}
    if not isinstance(loss, Mapping):
        loss = {tag_name: loss}
    return {str(k): v.item() if isinstance(v, torch.Tensor) else v for k, v in loss.items()}


def iteration_metrics(
    engine: Engine, output_transform: Callable[[Any], Any], tag_name: str, optimizer_param_names: Sequence[str]
) -> dict[str, Any]:
    """
    What MONAI's ``MLFlowHandler`` logs at an iteration (at step ``engine.state.iteration``), under MONAI's names: the
    loss (:func:`loss_values`), then, when the engine has an optimizer, each of ``optimizer_param_names`` per param
    group as ``<name>_group_<i>``. Nothing when the loss is ``None``.

    Args:
        engine: the engine, at ``ITERATION_COMPLETED``.
        output_transform: the handler's ``output_transform``.
        tag_name: the handler's ``tag_name``.
        optimizer_param_names: the handler's ``optimizer_param_names``.
    """
    metrics: dict[str, Any] = loss_values(engine.state.output, output_transform, tag_name)
    if not metrics:
        return {}
    optimizer = getattr(engine, "optimizer", None)
    if optimizer is not None:
        for name in optimizer_param_names:
            metrics.update({f"{name}_group_{i}": float(group[name]) for i, group in enumerate(optimizer.param_groups)})
    return metrics


def iteration_names(metrics: Mapping[str, Any], optimizer_param_names: Sequence[str], groups: int) -> dict[str, Any]:
    """
    ``metrics`` (:func:`iteration_metrics`) under per-iteration names: each name ends in :data:`ITERATION_SUFFIX`,
    and the params of a one-group optimizer lose MONAI's ``_group_0`` (``train_loss_iter``, ``lr_iter``; with two
    groups ``lr_group_0_iter`` and ``lr_group_1_iter``).

    Args:
        metrics: MONAI's name -> value.
        optimizer_param_names: the handler's ``optimizer_param_names``.
        groups: the number of the optimizer's param groups (0 without an optimizer).
    """
    single = {f"{name}_group_0": name for name in optimizer_param_names} if groups == 1 else {}
    return {f"{single.get(key, key)}{ITERATION_SUFFIX}": value for key, value in metrics.items()}


class EpochMean:
    """
    The mean of each loss over the iterations of an epoch: :meth:`add` at each iteration, :meth:`pop` at its end
    gives ``{<name>_epoch: mean}`` (:data:`EPOCH_SUFFIX`) and starts the next epoch.

    Not Ignite's ``Average`` metric: the MLflow handler runs on rank 0 only, and under DDP ``Average.compute``
    all-reduces across ranks, which would wait forever for the ranks that have no handler. The mean is over
    rank 0's iterations, as the per-iteration loss is rank 0's.
    """

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, values: Mapping[str, float]) -> None:
        """
        Add one iteration's losses.

        Args:
            values: name -> value (:func:`loss_values`).
        """
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(value)
            self.counts[name] = self.counts.get(name, 0) + 1

    def pop(self) -> dict[str, float]:
        """``{<name>_epoch: mean}`` of what was added since the last call (``{}`` if nothing was), then reset."""
        means = {f"{name}{EPOCH_SUFFIX}": total / self.counts[name] for name, total in self.sums.items()}
        self.sums, self.counts = {}, {}
        return means


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
