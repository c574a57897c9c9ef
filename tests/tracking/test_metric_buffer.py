from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from monai.handlers import MLFlowHandler, from_engine

from monai_srb.tracking import EpochMean, MetricBuffer, SRBMLFlowHandler, default_tracking_uri, iteration_names

SIZE = 8


@pytest.fixture(autouse=True)
def _no_mlflow_env(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _trainer(epochs: int = 2, n: int = 3) -> SupervisedTrainer:
    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    data = [{"image": torch.rand(1, 1, SIZE, SIZE), "label": torch.rand(1, 1, SIZE, SIZE)} for _ in range(n)]
    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=epochs, train_data_loader=data, network=net,
        optimizer=torch.optim.SGD([{"params": [net.weight]}, {"params": [net.bias], "lr": 0.5}], lr=0.1),
        loss_function=torch.nn.functional.mse_loss, amp=False,
    )
    # an epoch score for the handlers to log (registered first: handlers run in the order they were added)
    trainer.add_event_handler(Events.EPOCH_COMPLETED,
                              lambda engine: engine.state.metrics.update({"score": engine.state.epoch / 10}))
    return trainer


def _history(tmp_path: Path, experiment: str) -> dict[str, list[tuple[int, float]]]:
    client = mlflow.MlflowClient(default_tracking_uri(str(tmp_path)))
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return {key: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
            for key in run.data.metrics}


# the arguments MONAI's default loggers read: the loss's name and shape, optimizer params, epoch steps, attributes
OPTIONS: list[dict[str, Any]] = [
    {"output_transform": from_engine(["loss"], first=True)},  # MONAI's default transform takes a dict of tensors
    {"tag_name": "train_loss", "output_transform": from_engine(["loss"], first=True), "state_attributes": ["iteration"],
     "global_epoch_transform": lambda epoch: 10 * epoch},
    {"output_transform": lambda output: {"a": float(output[0]["loss"]), "b": 2.0},
     "optimizer_param_names": ["lr", "momentum"]},
]


# the engine state attributes and metrics logged at epoch ends, under their own names in both handlers
EPOCH_KEYS = {"score", "iteration"}
ITERATIONS_PER_EPOCH = 3


@pytest.mark.parametrize("options", OPTIONS, ids=["default_names", "named_loss", "dict_loss"])
def test_the_buffer_gets_what_monais_default_loggers_log_on_one_axis_per_kind(tmp_path, options):
    uri = default_tracking_uri(str(tmp_path))
    for experiment, handler in (("monai", MLFlowHandler), ("srb", SRBMLFlowHandler)):
        trainer = _trainer(n=ITERATIONS_PER_EPOCH)
        handler(tracking_uri=uri, experiment_name=experiment, close_on_complete=True, **options).attach(trainer)
        trainer.run()
    monai, srb = _history(tmp_path, "monai"), _history(tmp_path, "srb")
    # MONAI's per-iteration metrics (the loss, each group's lr) end in _iter; the per-epoch ones keep their names
    expected = {key if key in EPOCH_KEYS else f"{key}_iter": history for key, history in monai.items()}
    # and each loss gets its epoch's mean at the epoch's step, the step MONAI gives the per-epoch metrics
    epoch_steps = [step for step, _ in monai["score"]]
    losses = [key for key in monai if key not in EPOCH_KEYS and not key.startswith(("lr_", "momentum_"))]
    assert losses and len(epoch_steps) == 2
    for key in losses:
        values = [value for _, value in monai[key]]
        means = [np.mean(values[i : i + ITERATIONS_PER_EPOCH]) for i in range(0, len(values), ITERATIONS_PER_EPOCH)]
        expected[f"{key}_epoch"] = list(zip(epoch_steps, means))
    assert set(srb) == set(expected) and "score" in srb
    for key, history in expected.items():
        assert [s for s, _ in srb[key]] == [s for s, _ in history], key
        np.testing.assert_allclose([v for _, v in srb[key]], [v for _, v in history], rtol=1e-6, err_msg=key)


# (MONAI's per-iteration names, optimizer params, param groups, the per-iteration names logged)
NAME_CASES = [
    ({"train_loss": 1.0, "lr_group_0": 0.1}, ["lr"], 1, {"train_loss_iter": 1.0, "lr_iter": 0.1}),
    ({"Loss": 1.0, "lr_group_0": 0.1, "lr_group_1": 0.5}, ["lr"], 2,
     {"Loss_iter": 1.0, "lr_group_0_iter": 0.1, "lr_group_1_iter": 0.5}),
    ({"a": 1.0, "b": 2.0, "lr_group_0": 0.1, "momentum_group_0": 0.9}, ["lr", "momentum"], 1,
     {"a_iter": 1.0, "b_iter": 2.0, "lr_iter": 0.1, "momentum_iter": 0.9}),
    ({"train_loss": 1.0}, ["lr"], 0, {"train_loss_iter": 1.0}),  # no optimizer
]


@pytest.mark.parametrize("metrics,param_names,groups,expected", NAME_CASES)
def test_per_iteration_metrics_are_named_for_their_axis(metrics, param_names, groups, expected):
    assert iteration_names(metrics, param_names, groups) == expected


def test_the_epoch_mean_restarts_each_epoch():
    mean = EpochMean()
    for value in (1.0, 2.0, torch.tensor(6.0).item()):
        mean.add({"train_loss": value})
    assert mean.pop() == {"train_loss_epoch": 3.0}
    assert mean.pop() == {}
    mean.add({"a": 1.0, "b": 4.0})
    assert mean.pop() == {"a_epoch": 1.0, "b_epoch": 4.0}


def test_callers_own_loggers_are_used_as_given(tmp_path):
    seen: list[str] = []
    trainer = _trainer(epochs=1)
    handler = SRBMLFlowHandler(output_dir=str(tmp_path), experiment_name="own", close_on_complete=True,
                               iteration_logger=lambda engine: seen.append("iteration"),
                               epoch_logger=lambda engine: seen.append("epoch"))
    handler.attach(trainer)
    trainer.run()
    assert seen == ["iteration"] * 3 + ["epoch"] and _history(tmp_path, "own") == {}


class _Client:
    """Records what log_batch sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []

    def log_batch(self, run_id: str, metrics: list, params: list, tags: list) -> None:
        self.sent.append((run_id, len(metrics)))


# (what is added: (run id, number of metrics), max batch, what add sends, what flush then sends)
BUFFER_CASES = [
    ([("a", 3), ("a", 4)], 1000, [], [("a", 7)]),
    ([("a", 2500)], 1000, [("a", 1000), ("a", 1000), ("a", 500)], []),  # full: sent in MLflow's batches
    ([("a", 3), ("b", 2)], 1000, [("a", 3)], [("b", 2)]),  # another run: the first run's metrics go to it first
]


@pytest.mark.parametrize("added,max_batch,on_add,on_flush", BUFFER_CASES, ids=["held", "full", "run_change"])
def test_metric_buffer_batches(added, max_batch, on_add, on_flush):
    client = _Client()
    buffer = MetricBuffer(client, max_batch=max_batch)  # type: ignore[arg-type]
    for run_id, n in added:
        buffer.add(run_id, {f"m{i}": float(i) for i in range(n)}, step=1)
    assert client.sent == on_add
    buffer.flush()
    assert client.sent[len(on_add):] == on_flush and buffer.pending == []
