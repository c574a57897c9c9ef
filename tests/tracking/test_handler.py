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
from test_run_params import SIZE, _inserted, _unet  # the networks the run record tests describe

import monai_srb.tracking
from monai_srb.nets import SRBUNet
from monai_srb.tracking import (
    CHECKPOINT_SHA256_TAG,
    SRBMLFlowHandler,
    default_tracking_uri,
    file_sha256,
)

REPO = Path(__file__).resolve().parents[2]


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

MODULES = sorted(Path(monai_srb.tracking.__file__).parent.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_uses_no_private_member_of_monai_mlflowhandler(path):
    tree = ast.parse(path.read_text())
    private = sorted(
        node.attr for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
        and hasattr(MLFlowHandler, node.attr)
    )
    assert private == []


def test_overrides_no_private_method_of_monai_mlflowhandler():
    overridden = [name for name in vars(SRBMLFlowHandler) if name.startswith("_") and not name.startswith("__")
                  and hasattr(MLFlowHandler, name)]
    assert overridden == []


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
    assert sent == [2 * iterations + 1] * epochs  # loss and lr per iteration, the epoch's mean loss
    run = _runs(tmp_path, "buffered")[0]
    client = _client(tmp_path)
    # per iteration under names that say so, at step = iteration; the epoch's mean loss at step = epoch
    history = {key: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
               for key in run.data.metrics}
    assert set(history) == {"Loss_iter", "lr_iter", "Loss_epoch"}
    for key in ("Loss_iter", "lr_iter"):
        assert [step for step, _ in history[key]] == list(range(1, epochs * iterations + 1))
    losses = [value for _, value in history["Loss_iter"]]
    means = [np.mean(losses[i : i + iterations]) for i in range(0, len(losses), iterations)]
    assert [step for step, _ in history["Loss_epoch"]] == list(range(1, epochs + 1))
    np.testing.assert_allclose([value for _, value in history["Loss_epoch"]], means, rtol=1e-6)


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


@pytest.mark.slow
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
        assert run.data.tags[CHECKPOINT_SHA256_TAG] == file_sha256(str(ckpt))
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
    assert info.signature.inputs is None  # the model checks its input itself (monai_srb.tracking.logged_model)
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


# ---- tags, the configuration and named artifact folders ----

# (the caller, the params the run records beside the tracked ones, the files under config/): under
# `monai.bundle run` (no handle on the parser) the run records the tracked values it used, the network built and
# the config files as filed; a caller holding the parser adds the overrides and the merged config.
CONFIG_CASES = [
    ("monai_bundle_run", {}, {"config/train.json", "config/run_params.json"}),
    ("workflow_holder", {"network.srb_positions": "[]"}, {"config/merged_config.json"}),
]


@pytest.mark.parametrize("caller,overrides,files", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_tags_config_and_artifact_folders(tmp_path, caller, overrides, files):
    ckpt = tmp_path / "models" / "model.pt"
    figures = tmp_path / "figures"
    ckpt.parent.mkdir()
    figures.mkdir()
    (figures / "overlay_0.png").write_bytes(b"png")
    path = tmp_path / "train.json"
    path.write_text(json.dumps({
        "_meta_": {"name": "tiny bundle", "version": "0.3.0"},
        "config_files": str(path),
        "epochs": 1,
        "dataset_dir": "/data/isic2017_sample",
        "output_dir": str(tmp_path / "runs"),
        "network": {"_target_": "monai_srb.nets.SRBUNet", "spatial_dims": 2, "in_channels": 1, "out_channels": 2,
                    "features": [4, 4, 8, 8, 8, 4], "srb_positions": ["before_up4"], "spatial_size": SIZE},
        # a machine path outside the bundle (left out) and one inside it (relative to it)
        "tracked": {"epochs": "@epochs", "dataset_dir": "@dataset_dir", "output_dir": "@output_dir"},
        "run_params": {"_target_": "monai_srb.tracking.RunParams", "config_files": "@config_files",
                       "tracked": "@tracked", "meta": "@_meta_", "bundle_root": str(tmp_path)},
        "run_data": {"_target_": "monai_srb.tracking.RunData", "dataset_dir": "@dataset_dir",
                     "parts": {"train": [{"image": "/data/isic2017_sample/a.png"}], "val": []}},
        "handler": {
            "_target_": "monai_srb.tracking.SRBMLFlowHandler",
            "output_dir": str(tmp_path),
            "experiment_name": "tags",
            "run_params": "@run_params",
            "run_data": "@run_data",
            "network": "@network",
            "artifact_folders": {"checkpoints": str(ckpt), "figures": str(figures), "missing": str(tmp_path / "no")},
            "close_on_complete": True,
            "iteration_log": False,
        },
    }))
    parser = ConfigParser()
    parser.read_config(str(path))
    parser.update({"epochs": 2, "network#srb_positions": []})  # a nested override: a plain U-Net
    handler = parser.get_parsed_content("handler")
    net = parser.get_parsed_content("network")
    if caller == "workflow_holder":
        parser.get_parsed_content("run_params").config = parser.get()
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
    assert (tags["network"], tags["block"], tags["srb_positions"]) == ("SRBUNet", "none", "[]")
    assert tags.get("mlflow.source.git.commit") in heads
    # MLflow's own tags, which MlflowClient.create_run leaves to the caller, and the run's one-line description
    assert tags["mlflow.user"] and tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.source.name"]
    assert tags["mlflow.note.content"] == ("training of tiny bundle 0.3.0: SRBUNet without blocks, instance norm; "
                                           "data isic2017_sample (train 1, val 0); 2 epochs")
    # no machine paths: the data is the dataset input, a path inside the bundle is relative to it
    described = {"network": "SRBUNet", "srb_count": "0", "srb_positions": "[]", "block": "none", "norm": "instance"}
    assert run.data.params == {"epochs": "2", "output_dir": "runs", **described, **overrides,
                               "max_epochs": "1", "epoch_length": "2"}
    (data,) = run.inputs.dataset_inputs
    assert (data.dataset.name, json.loads(data.dataset.profile)) == ("isic2017_sample", {"files": 1})
    assert {t.key: t.value for t in data.tags} == {"mlflow.data.context": "training", "num_train": "1", "num_val": "0"}
    assert data.dataset.digest == parser.get_parsed_content("run_data").digest()
    client = _client(tmp_path)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"checkpoints", "config", "figures"}
    assert [a.path for a in client.list_artifacts(run.info.run_id, "figures")] == ["figures/overlay_0.png"]
    assert [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")] == ["checkpoints/model.pt"]
    assert {a.path for a in client.list_artifacts(run.info.run_id, "config")} == files

    def artifact(name: str) -> dict:
        return json.loads(Path(client.download_artifacts(run.info.run_id, name, str(tmp_path / caller))).read_text())

    if caller == "workflow_holder":
        merged = artifact("config/merged_config.json")
        assert merged["epochs"] == 2 and merged["network"]["srb_positions"] == []
    else:
        assert artifact("config/train.json")["epochs"] == 1  # as filed
        used = artifact("config/run_params.json")
        assert used["tracked"]["epochs"] == 2 and used["network"]["srb_positions"] == []


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
