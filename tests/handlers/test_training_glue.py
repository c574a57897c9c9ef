from __future__ import annotations

import re
import socket
import time

import mlflow
import pytest
import torch
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from monai.handlers import from_engine

from monai_srb.blocks import SpectralResidualBlock
from monai_srb.handlers import (
    PROCESS_RUN_NAME,
    RUN_ID_STATE_KEY,
    OrthogonalRetractionHandler,
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


@pytest.mark.parametrize("transform,expected", [("aom", 2 * 6), ("fft", 0)])
def test_retraction_runs_every_iteration(transform, expected):
    net = SpectralResidualBlock(2, 4, transform=transform, spatial_size=8)
    trainer = _trainer(net)
    handler = OrthogonalRetractionHandler(net)
    handler.attach(trainer)
    trainer.run()
    assert handler.retracted == expected
    if transform == "aom":
        for m in net.f.orthogonal_matrices:
            assert (m.t() @ m - torch.eye(8)).abs().max() < 1e-5


def test_retraction_rejects_bad_every():
    with pytest.raises(ValueError, match="every"):
        OrthogonalRetractionHandler(torch.nn.Identity(), every=0)


def test_mlflow_logs_to_default_sqlite_store(tmp_path):
    net = SpectralResidualBlock(2, 4)
    trainer = _trainer(net)
    SRBMLFlowHandler(
        output_dir=str(tmp_path), experiment_name="glue", experiment_param={"a": 1}, close_on_complete=True,
        output_transform=from_engine(["loss"], first=True),
    ).attach(trainer)
    trainer.run()
    assert (tmp_path / "mlflow.db").exists()
    client = mlflow.MlflowClient(default_tracking_uri(str(tmp_path)))
    (run,) = client.search_runs([client.get_experiment_by_name("glue").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["a"] == "1"
    assert "Loss" in run.data.metrics


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
    client = mlflow.MlflowClient(default_tracking_uri(str(tmp_path)))
    runs = client.search_runs([client.get_experiment_by_name("crash").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]


def test_a_killed_process_run_is_not_joined(tmp_path):
    client = mlflow.MlflowClient(default_tracking_uri(str(tmp_path)))
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


def _dead_port() -> int:
    with socket.socket() as s:  # bound, then closed: nothing listens on it
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_dead_tracking_server_fails_fast_naming_the_uri(tmp_path, scheme):
    uri = f"{scheme}://127.0.0.1:{_dead_port()}"
    start = time.monotonic()
    with pytest.raises(ValueError, match=re.escape(repr(uri))):
        SRBMLFlowHandler(output_dir=str(tmp_path), tracking_uri=uri, tracking_timeout=2.0)
    elapsed = time.monotonic() - start
    print(f"refused after {elapsed:.2f} s")
    assert elapsed < 60  # MLflow's own retries take about 4 minutes


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_tracking_timeout_must_be_positive(tmp_path, timeout):
    with pytest.raises(ValueError, match="tracking_timeout"):
        SRBMLFlowHandler(output_dir=str(tmp_path), tracking_uri="http://127.0.0.1:1", tracking_timeout=timeout)


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
    client = mlflow.MlflowClient(default_tracking_uri(str(tmp_path)))
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("link").experiment_id])}
    killed, later = runs[PROCESS_RUN_NAME], runs["resumed"]
    assert checkpoint[RUN_ID_STATE_KEY] == killed.info.run_id
    assert killed.info.status == "KILLED" and later.info.status == "FINISHED"
    assert later.data.tags["srb.resumed_from_run_id"] == killed.info.run_id
    assert killed.data.tags["srb.resumed_by_run_id"] == later.info.run_id
    assert resumed.state_dict()[RUN_ID_STATE_KEY] == later.info.run_id
