from __future__ import annotations

import ast
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.bundle import ConfigParser
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import MLFlowHandler, from_engine
from monai.networks.nets import BasicUNet

import monai_srb.handlers.mlflow_tracking as tracking
from monai_srb.handlers import (
    CHECKPOINT_SHA256_TAG,
    SRBMLFlowHandler,
    config_params,
    default_tracking_uri,
    describe_network,
    tracking_enabled,
)
from monai_srb.nets import SRBUNet, insert_blocks
from monai_srb.nets.srb_classifiers import SRBDenseNet121
from monai_srb.nets.srb_unet import unet_norm

REPO = Path(__file__).resolve().parents[2]
SIZE = 32  # smallest input a 4-level U-Net with SRBs at every level takes


def _unet(block: str = "srb_fft", positions: tuple[str, ...] = ("before_up4", "before_up1"), norm: str = "instance"):
    torch.manual_seed(0)
    return SRBUNet(2, 1, 2, features=(4, 4, 8, 8, 8, 4), srb_positions=positions, block=block, spatial_size=SIZE,
                   unet_args={"norm": unet_norm(norm)})


def _inserted():
    torch.manual_seed(0)
    net = BasicUNet(2, 1, 2, features=(4, 4, 8, 8, 8, 4))
    return insert_blocks(net, ["down_2"], block="srb_fft", position="after", example_input=[1, 1, SIZE, SIZE])


def _data(n: int = 2) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    shape = (1, 1, SIZE, SIZE)
    return [
        {"image": torch.rand(shape, generator=g), "label": torch.randint(0, 2, shape, generator=g)} for _ in range(n)
    ]


def _trainer(net: torch.nn.Module, fail_at: int | None = None, epochs: int = 1, n: int = 2) -> SupervisedTrainer:
    def loss(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        if fail_at is not None and trainer.state.iteration >= fail_at:
            raise RuntimeError("boom")
        return torch.nn.functional.cross_entropy(pred, label[:, 0].long())

    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=epochs, train_data_loader=_data(n), network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1), loss_function=loss, amp=False,
    )
    return trainer


def _client(tmp_path: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(default_tracking_uri(str(tmp_path)))


def _runs(tmp_path: Path, experiment: str) -> list[mlflow.entities.Run]:
    client = _client(tmp_path)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id], order_by=["start_time ASC"])


@pytest.fixture(autouse=True)
def _no_mlflow_env(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


# ---- depends only on MONAI's public MLFlowHandler API (MONAI 1.5 has no _dispose_sqlite_store) ----


def test_uses_no_private_member_of_monai_mlflowhandler():
    tree = ast.parse(Path(tracking.__file__).read_text())
    own = set(vars(SRBMLFlowHandler))
    private = sorted(
        node.attr for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
        and hasattr(MLFlowHandler, node.attr) and node.attr not in own
    )
    assert private == []


def _monai_15_close(self) -> None:  # MONAI 1.5's MLFlowHandler.close: no SQLite disposal
    if self.cur_run:
        self.client.set_terminated(self.cur_run.info.run_id, self.run_finish_status)
        self.cur_run = None


@pytest.mark.parametrize("monai_15", [False, True], ids=["monai_1.6", "monai_1.5"])
def test_crash_marks_the_run_failed(tmp_path, monkeypatch, monai_15):
    if monai_15:
        monkeypatch.delattr(MLFlowHandler, "_dispose_sqlite_store", raising=False)
        monkeypatch.setattr(MLFlowHandler, "close", _monai_15_close)
    trainer = _trainer(_unet(), fail_at=1)
    SRBMLFlowHandler(output_dir=str(tmp_path), experiment_name="crash", close_on_complete=True,
                     iteration_log=False).attach(trainer)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.run()
    assert [r.info.status for r in _runs(tmp_path, "crash")] == ["FAILED"]


@pytest.mark.parametrize("epochs, iterations", [(1, 3), (3, 4)])
def test_iteration_metrics_are_sent_once_per_epoch(tmp_path, epochs, iterations):
    # MONAI sends two requests per iteration (loss, learning rate); over HTTP that slowed grids. Every value
    # still arrives, in one request per epoch.
    net = _unet()
    trainer = _trainer(net, epochs=epochs, n=iterations)
    handler = SRBMLFlowHandler(output_dir=str(tmp_path), experiment_name="buffered", close_on_complete=True,
                               optimizer_param_names="lr", output_transform=from_engine(["loss"], first=True))
    handler.attach(trainer)
    sent = []
    log_batch = handler.client.log_batch

    def counting(run_id, metrics=(), params=(), tags=(), **kwargs):
        if metrics:
            sent.append(len(metrics))
        return log_batch(run_id, metrics=metrics, params=params, tags=tags, **kwargs)

    handler.client.log_batch = counting
    trainer.run()
    assert sent == [2 * iterations] * epochs
    run = _runs(tmp_path, "buffered")[0]
    client = _client(tmp_path)
    for key in ("Loss", "lr_group_0"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert steps == list(range(1, epochs * iterations + 1))


# ---- tracking can be switched off ----


@pytest.mark.parametrize(
    "uri,enabled",
    [(None, False), ("null", False), ("NULL", False), ("None", False), ("off", False), ("", False),
     ("sqlite:///x/mlflow.db", True), ("http://127.0.0.1:5000", True)],
)
def test_tracking_enabled(uri, enabled):
    assert tracking_enabled(uri) is enabled


def test_default_tracking_uri_creates_nothing(tmp_path):
    uri = default_tracking_uri(str(tmp_path / "out"))
    assert uri == f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}" and not (tmp_path / "out").exists()


# ---- params: the tracked values and the overrides, not the raw config ----


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "train.json"
    path.write_text(json.dumps({
        "_meta_": {},
        "config_files": str(path),
        "epochs": 10,
        "lr": 0.1,
        "net": {"_target_": "torch.nn.Identity", "unused": {"depth": 2, "width": 4}},
        "handler": {"_target_": "torch.nn.Identity", "depth": 1},
        "handlers": ["%handler"],  # a copy of the named handler, as the bundles' handler lists take
        "tracked": {"epochs": "@epochs", "lr": "@lr", "steps": "$@epochs * 2"},
        "params": "$monai_srb.handlers.config_params(@config_files, @tracked)",
    }))
    return path


@pytest.mark.parametrize(
    "overrides,expected",
    [
        ({}, {"epochs": "10", "lr": "0.1", "steps": "20"}),
        ({"epochs": 3}, {"epochs": "3", "lr": "0.1", "steps": "6"}),
        ({"net#unused#depth": 5, "extra": [1, 2]},
         {"epochs": "10", "lr": "0.1", "steps": "20", "net.unused.depth": "5", "extra": "[1, 2]"}),
        # an override of a handler that a list holds as a `%` copy: logged once, not per copy
        ({"handler#depth": 3}, {"epochs": "10", "lr": "0.1", "steps": "20", "handler.depth": "3"}),
    ],
)
def test_config_params_are_tracked_values_and_overrides(tmp_path, overrides, expected):
    parser = ConfigParser(globals={"monai_srb": "monai_srb"})
    parser.read_config(str(_config(tmp_path)))
    parser.update(overrides)
    assert parser.get_parsed_content("params") == expected


def test_config_params_outside_a_bundle_are_the_tracked_values(tmp_path):
    params = config_params(str(_config(tmp_path)), {"epochs": 3, "features": [1, 2]})
    assert params == {"epochs": "3", "features": "[1, 2]"}


# ---- the network actually built ----


@pytest.mark.parametrize(
    "build,expected",
    [
        (lambda: _unet(), {"network": "SRBUNet", "srb_count": 2, "srb_positions": ["before_up4", "before_up1"],
                           "block": "srb_fft", "norm": "instance"}),
        (lambda: _unet("srb_aom", ("after_up2",), "batch"),
         {"network": "SRBUNet", "srb_count": 1, "srb_positions": ["after_up2"], "block": "srb_aom", "norm": "batch"}),
        (lambda: _unet(positions=()), {"network": "SRBUNet", "srb_count": 0, "srb_positions": [], "block": "none",
                                       "norm": "instance"}),
        (_inserted, {"network": "BasicUNet", "srb_count": 1, "srb_positions": ["after_down_2"], "block": "srb_fft",
                     "norm": "instance"}),
        (lambda: SRBDenseNet121(2, 1, 3, srb_after=[]),  # the chest bundle's --network_def#srb_after '[]'
         {"network": "SRBDenseNet121", "srb_count": 0, "srb_positions": [], "block": "none", "norm": "batch"}),
    ],
    ids=["unet_srb_f", "unet_aom_batch", "unet_plain", "inserted", "densenet_plain"],
)
def test_describe_network(build, expected):
    assert describe_network(build()) == expected


# ---- the best checkpoint as an MLflow model, loadable in another process ----


def _train_and_log_model(tmp_path: Path, net: torch.nn.Module, experiment: str, registered: str | None = None):
    best = {k: v + 0.01 if v.is_floating_point() else v for k, v in net.state_dict().items()}
    ckpt = tmp_path / f"{experiment}_model.pt"
    torch.save(best, ckpt)  # what the validator's key-metric saver wrote: not the last weights
    handler = SRBMLFlowHandler(
        output_dir=str(tmp_path), experiment_name=experiment, experiment_param={}, network=net,
        model_input_shape=[1, 1, SIZE, SIZE], model_checkpoint=str(ckpt), registered_model_name=registered,
        close_on_complete=True, iteration_log=False,
    )
    trainer = _trainer(net)
    handler.attach(trainer)
    trainer.run()
    reference = _unet() if isinstance(net, SRBUNet) else _inserted()  # the same architecture, the best weights
    reference.load_state_dict(best)
    (run,) = _runs(tmp_path, experiment)
    return run, reference.eval(), ckpt


def test_best_checkpoint_is_an_mlflow_model_another_process_loads(tmp_path, monkeypatch):
    torch.manual_seed(1)
    x = torch.rand(2, 1, SIZE, SIZE)
    torch.save(x, tmp_path / "x.pt")
    cases = {}
    for name, net in {"srb_unet": _unet(), "inserted": _inserted()}.items():
        run, reference, ckpt = _train_and_log_model(tmp_path, net, name, registered=f"srb_{name}")
        assert run.info.status == "FINISHED"
        with torch.no_grad():
            cases[run.info.run_id] = reference(x)
        assert run.data.tags[CHECKPOINT_SHA256_TAG] == tracking._sha256(str(ckpt))
        client = _client(tmp_path)
        (version,) = client.search_model_versions(f"name = 'srb_{name}'")
        assert version.run_id == run.info.run_id
    script = (
        "import sys, torch, mlflow\n"
        "mlflow.set_tracking_uri(sys.argv[1]); x = torch.load(sys.argv[2])\n"
        "for run_id in sys.argv[3:]:\n"
        "    model = mlflow.pytorch.load_model(f'runs:/{run_id}/model').eval()\n"
        "    with torch.no_grad(): torch.save(model(x), f'{sys.argv[2]}.{run_id}')\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", script, default_tracking_uri(str(tmp_path)), str(tmp_path / "x.pt"), *cases],
                   check=True, env=env, timeout=300)
    for run_id, expected in cases.items():
        assert torch.allclose(torch.load(tmp_path / f"x.pt.{run_id}"), expected, atol=1e-6)
    assert not os.environ.get("MLFLOW_TRACKING_URI")  # logging the model left the global tracking URI as it was
    monkeypatch.setenv("MLFLOW_TRACKING_URI", default_tracking_uri(str(tmp_path)))  # runs:/ URIs resolve through it
    run_id = next(iter(cases))
    info = mlflow.models.get_model_info(f"runs:/{run_id}/model")
    assert info.signature.inputs is None  # the model checks its input itself (monai_srb.handlers.logged_model)
    assert info.signature.outputs.inputs[0].shape == (-1, 2, -1, -1)  # any batch, any size
    assert info.saved_input_example_info is not None
    # the python_function flavour takes another size than the example's, and NumPy's default float64
    x64 = torch.rand(2, 1, 2 * SIZE, 2 * SIZE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    reference = _unet()
    reference.load_state_dict(torch.load(tmp_path / "srb_unet_model.pt", weights_only=True))
    with torch.no_grad():
        expected = reference.eval()(x64.float()).numpy()
    out = mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(x64.numpy())
    assert out.dtype == np.float32 and out.shape == (2, 2, 2 * SIZE, 2 * SIZE)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_model_input_shape_needs_a_network(tmp_path):
    with pytest.raises(ValueError, match=r"model_input_shape \[1, 1, 32, 32\] needs the network"):
        SRBMLFlowHandler(output_dir=str(tmp_path), model_input_shape=[1, 1, 32, 32])


# ---- tags, the merged config and named artifact folders ----


def test_tags_config_and_artifact_folders(tmp_path):
    ckpt = tmp_path / "models" / "model.pt"
    figures = tmp_path / "figures"
    ckpt.parent.mkdir()
    figures.mkdir()
    (figures / "overlay_0.png").write_bytes(b"png")
    config = {
        "_meta_": {"name": "tiny bundle", "version": "0.3.0"},
        "epochs": 1,
        "network": {"_target_": "monai_srb.nets.SRBUNet", "spatial_dims": 2, "in_channels": 1, "out_channels": 2,
                    "features": [4, 4, 8, 8, 8, 4], "srb_positions": ["before_up4"], "spatial_size": SIZE},
        "handler": {
            "_target_": "monai_srb.handlers.SRBMLFlowHandler",
            "output_dir": str(tmp_path),
            "experiment_name": "tags",
            "experiment_param": {"epochs": "@epochs", "dataset_dir": "/data/isic2017_sample"},
            "network": "@network",
            "artifact_folders": {"checkpoints": str(ckpt), "figures": str(figures), "missing": str(tmp_path / "no")},
            "close_on_complete": True,
            "iteration_log": False,
        },
    }
    parser = ConfigParser(config)
    parser.update({"epochs": 2})
    handler = parser.get_parsed_content("handler")
    net = parser.get_parsed_content("network")
    torch.save(net.state_dict(), ckpt)
    trainer = _trainer(net)
    handler.attach(trainer)

    def head() -> str | None:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
        return result.stdout.strip() or None

    heads = {head()}  # read around the run: a commit made meanwhile (in another shell) moves HEAD
    trainer.run()
    heads.add(head())
    (run,) = _runs(tmp_path, "tags")
    tags = run.data.tags
    assert (tags["bundle"], tags["bundle_version"], tags["dataset"]) == ("tiny bundle", "0.3.0", "isic2017_sample")
    assert (tags["network"], tags["block"], tags["srb_positions"]) == ("SRBUNet", "srb_fft", "['before_up4']")
    assert tags.get("mlflow.source.git.commit") in heads
    params = run.data.params
    assert (params["epochs"], params["srb_count"], params["norm"]) == ("2", "1", "instance")
    client = _client(tmp_path)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"checkpoints", "config", "figures"}
    assert [a.path for a in client.list_artifacts(run.info.run_id, "figures")] == ["figures/overlay_0.png"]
    assert [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")] == ["checkpoints/model.pt"]
    merged = client.download_artifacts(run.info.run_id, "config/merged_config.json", str(tmp_path))
    merged = json.loads(Path(merged).read_text())
    assert merged["epochs"] == 2 and merged["handler"]["experiment_name"] == "tags"


# ---- an evaluate run is nested under the training run of its checkpoint ----


def _evaluate(tmp_path: Path, net: torch.nn.Module, ckpt: Path, experiment: str) -> None:
    evaluator = SupervisedEvaluator(device=torch.device("cpu"), val_data_loader=_data(1), network=net,
                                    key_val_metric=None)
    # a score for the handler to log (registered first: handlers run in the order they were added)
    evaluator.add_event_handler(Events.EPOCH_COMPLETED, lambda engine: engine.state.metrics.update({"val_dice": 0.5}))
    SRBMLFlowHandler(output_dir=str(tmp_path), experiment_name=experiment, run_name="evaluate",
                     experiment_param={"ckpt_path": str(ckpt)}, network=net, scored_checkpoint=str(ckpt),
                     close_on_complete=True, iteration_log=False).attach(evaluator)
    evaluator.run()


def test_evaluate_run_is_nested_under_the_training_run(tmp_path, caplog):
    train_run, _, ckpt = _train_and_log_model(tmp_path, _unet(), "link")
    _evaluate(tmp_path, _unet(), ckpt, "link")
    other = tmp_path / "never_logged.pt"
    torch.save(_unet().state_dict(), other)
    with caplog.at_level(logging.WARNING):
        _evaluate(tmp_path, _unet(), other, "link")
    assert "is not linked to a training run" in caplog.text
    linked, unlinked = [r for r in _runs(tmp_path, "link") if r.info.run_name == "evaluate"]
    assert linked.data.tags["mlflow.parentRunId"] == train_run.info.run_id
    assert "mlflow.parentRunId" not in unlinked.data.tags
    assert linked.data.metrics["val_dice"] == 0.5 and linked.info.status == "FINISHED"
