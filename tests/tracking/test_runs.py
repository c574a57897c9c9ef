"""Which run a handler writes to, how runs link and how they end; the experiment they go to is in test_experiment.py."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import torch
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from monai.handlers import from_engine

from monai_srb.blocks import SpectralResidualBlock
from monai_srb.tracking import (
    PROCESS_RUN_NAME,
    RUN_ID_STATE_KEY,
    SRBMLFlowHandler,
    default_tracking_uri,
)


def _trainer(net: torch.nn.Module, epochs: int = 2, fail_at: int | None = None) -> SupervisedTrainer:
    torch.manual_seed(0)
    data = [{"image": torch.randn(2, 4, 8, 8), "label": torch.randn(2, 4, 8, 8)} for _ in range(3)]

    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if fail_at is not None and trainer.state.iteration >= fail_at:
            raise RuntimeError("boom")
        return torch.nn.functional.mse_loss(pred, target)

    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=epochs,
        train_data_loader=data,
        network=net,
        optimizer=torch.optim.Adam(net.parameters(), lr=1e-2),
        loss_function=loss,
        amp=False,
    )
    return trainer


def _client(tmp_path: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(default_tracking_uri(str(tmp_path)))


@pytest.fixture(autouse=True)
def _no_mlflow_env(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_mlflow_logs_to_default_sqlite_store(tmp_path):
    net = SpectralResidualBlock(2, 4)
    trainer = _trainer(net)
    SRBMLFlowHandler(
        output_dir=str(tmp_path), experiment_name="glue", experiment_param={"a": 1}, close_on_complete=True,
        output_transform=from_engine(["loss"], first=True),
    ).attach(trainer)
    trainer.run()
    assert (tmp_path / "mlflow.db").exists()
    client = _client(tmp_path)
    experiment = client.get_experiment_by_name("glue")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["a"] == "1"
    assert {"Loss_iter", "Loss_epoch"} <= set(run.data.metrics)
    assert experiment.artifact_location == (tmp_path / "mlruns").as_uri()  # beside the database


def test_mlflow_marks_crashed_run_failed_and_next_run_is_new(tmp_path):
    trainer = _trainer(SpectralResidualBlock(2, 4), fail_at=3)
    handler = SRBMLFlowHandler(
        output_dir=str(tmp_path), experiment_name="crash", close_on_complete=True, iteration_log=False
    )
    handler.attach(trainer)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.run()
    trainer = _trainer(SpectralResidualBlock(2, 4))
    handler = SRBMLFlowHandler(
        output_dir=str(tmp_path), experiment_name="crash", close_on_complete=True, iteration_log=False
    )
    handler.attach(trainer)
    trainer.run()
    client = _client(tmp_path)
    runs = client.search_runs([client.get_experiment_by_name("crash").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]


def test_a_killed_process_run_is_not_joined(tmp_path):
    client = _client(tmp_path)
    experiment = client.create_experiment("resume")
    stale = client.create_run(experiment, run_name="run_of_a_killed_process")  # left RUNNING
    trainer = _trainer(SpectralResidualBlock(2, 4))
    handler = SRBMLFlowHandler(
        output_dir=str(tmp_path), experiment_name="resume", close_on_complete=True, iteration_log=False
    )
    handler.attach(trainer)
    trainer.run()
    runs = {r.info.run_id: r for r in client.search_runs([experiment])}
    assert len(runs) == 2 and runs[stale.info.run_id].info.status == "RUNNING"
    (new,) = [r for r in runs.values() if r.info.run_id != stale.info.run_id]
    assert new.info.status == "FINISHED" and new.info.run_name == PROCESS_RUN_NAME


def test_resumed_run_marks_the_killed_run_and_links_to_it(tmp_path):
    net = SpectralResidualBlock(2, 4)
    first = _trainer(net, epochs=1)
    SRBMLFlowHandler(output_dir=str(tmp_path), experiment_name="link", iteration_log=False).attach(first)
    first.run()  # without close_on_complete the run stays RUNNING, as after a kill -9
    checkpoint = first.state_dict()
    resumed = _trainer(net, epochs=2)
    SRBMLFlowHandler(output_dir=str(tmp_path), experiment_name="link", run_name="resumed", iteration_log=False,
                     close_on_complete=True).attach(resumed)
    resumed.add_event_handler(Events.STARTED, lambda engine: engine.load_state_dict({**checkpoint, "max_epochs": 2}))
    resumed.run()
    client = _client(tmp_path)
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("link").experiment_id])}
    killed, later = runs[PROCESS_RUN_NAME], runs["resumed"]
    assert checkpoint[RUN_ID_STATE_KEY] == killed.info.run_id
    assert killed.info.status == "KILLED" and later.info.status == "FINISHED"
    assert later.data.tags["srb.resumed_from_run_id"] == killed.info.run_id
    assert killed.data.tags["srb.resumed_by_run_id"] == later.info.run_id
    assert resumed.state_dict()[RUN_ID_STATE_KEY] == later.info.run_id
