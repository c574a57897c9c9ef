"""The bundles as MLflow users run them: `--tracking mlflow`, a switch to turn tracking off, the logged model,
clean params and tags, named artifact folders, and evaluate runs nested under the training run they score."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import mlflow
import pytest
import torch
from ignite.engine import Events
from monai.bundle import ConfigParser, ConfigWorkflow
from monai.handlers import MLFlowHandler

from monai_srb.bundle.results import SUMMARY_LOGGER, TrainingSummary
from monai_srb.tracking import default_tracking_uri

pytestmark = pytest.mark.filterwarnings("ignore:parsing config_file:UserWarning")

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "srb_skin_lesion_segmentation"
EXPERIMENT = "srb_skin_lesion_segmentation"
# 8 synthetic images at 32 x 32: 6 for training (3 iterations an epoch), 2 for validation
TINY: dict[str, Any] = {"image_size": 32, "synthetic_samples": 8, "batch_size": 2}
# overrides the MLflow run must show, one nested: one SRB instead of four, a batch-norm U-Net
OVERRIDES: dict[str, Any] = {"network_def#srb_positions": ["before_up1"], "norm": "batch"}


def _run(output_dir: Path, *names: str, tracking: str | None = None, **override: Any) -> ConfigWorkflow:
    workflow = ConfigWorkflow(
        config_file=[str(BUNDLE / "configs" / f"{name}.json") for name in names],
        meta_file=str(BUNDLE / "configs" / "metadata.json"),
        logging_file=False,
        workflow_type=None,
        tracking=tracking,
        bundle_root=str(BUNDLE),
        output_dir=str(output_dir),
        **{**TINY, **override},
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return workflow


class _Lines(logging.Handler):
    """The messages logged while it is attached."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Train 2 epochs and evaluate, both through MONAI's `--tracking mlflow` route; the summary training printed."""
    out = tmp_path_factory.mktemp("skin_mlflow")
    torch.set_num_threads(1)
    summary, printed = logging.getLogger(SUMMARY_LOGGER), _Lines()
    summary.addHandler(printed)
    try:
        _run(out, "train", tracking="mlflow", epochs=2, **OVERRIDES)
    finally:
        summary.removeHandler(printed)
    _run(out, "train", "evaluate", tracking="mlflow", **OVERRIDES)
    client = mlflow.MlflowClient(default_tracking_uri(str(out)))
    experiment = client.get_experiment_by_name(EXPERIMENT)
    found = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    (train,) = [r for r in found if r.info.run_name != "evaluate"]
    (evaluate,) = [r for r in found if r.info.run_name == "evaluate"]
    experiments = client.search_experiments()
    return SimpleNamespace(out=out, client=client, train=train, evaluate=evaluate, experiments=experiments,
                           printed=printed.lines)


def _steps(client: mlflow.MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


@pytest.mark.slow
def test_monai_tracking_route_logs_nothing_twice(runs):
    # MONAI's MLFlowHandler would log to its own "monai_experiment" or, here, beside the bundle's handler
    assert [e.name for e in runs.experiments if e.name != "Default"] == [EXPERIMENT]
    train_id = runs.train.info.run_id
    assert _steps(runs.client, train_id, "train_loss_iter") == [1, 2, 3, 4, 5, 6]
    assert _steps(runs.client, train_id, "train_loss_epoch") == [1, 2]
    assert _steps(runs.client, train_id, "val_mean_iou") == [1, 2]
    assert not {"Loss", "Loss_iter", "train_loss"} & set(runs.train.data.metrics)
    assert _steps(runs.client, runs.evaluate.info.run_id, "val_mean_iou") == [1]


@pytest.mark.slow
def test_params_are_tracked_values_and_the_network_built(runs):
    # a bundle run gives the config no handle on its parser, so the overrides show as what they made: the tracked
    # values used (norm) and the network built (the nested network_def#srb_positions), not as raw override ids
    params = runs.train.data.params
    assert params["epochs"] == "2" and params["image_size"] == "32"
    # no machine paths: the output folder lies outside the bundle (left out), the data is the dataset input
    assert not [v for v in params.values() if str(runs.out) in v or v.startswith("/")]
    assert not {"output_dir", "dataset_dir", "tracking_uri"} & set(params)
    assert not [k for k in params if k.startswith("network_def.")]
    assert (params["network"], params["srb_count"], params["srb_positions"]) == ("SRBUNet", "1", "['before_up1']")
    assert (params["block"], params["norm"]) == ("srb_fft", "batch")
    assert not [k for k in params if k.startswith(("train.", "validate.", "loss.", "optimizer."))]
    assert len(params) < 50


@pytest.mark.slow
def test_tags_and_artifact_folders(runs):
    meta = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    tags = runs.train.data.tags
    assert (tags["bundle"], tags["bundle_version"]) == (meta["name"], meta["version"])
    assert (tags["block"], tags["srb_positions"], tags["dataset"]) == ("srb_fft", "['before_up1']", "synthetic")
    # MLflow's own tags, and one line saying what the run is
    assert tags["mlflow.user"] and tags["mlflow.source.name"] and tags["mlflow.source.git.commit"]
    assert tags["mlflow.note.content"] == (
        f"training of {meta['name']} {meta['version']}: SRBUNet + 1 srb_fft (before_up1), batch norm; "
        "data synthetic (train 6, val 2); 2 epochs"
    )
    assert runs.evaluate.data.tags["mlflow.note.content"].startswith(f"evaluation of {meta['name']}")
    # the data as the runs' dataset inputs: one file list (8 images and their masks), counted per part
    (train_data,) = runs.train.inputs.dataset_inputs
    (scored,) = runs.evaluate.inputs.dataset_inputs
    assert (train_data.dataset.name, json.loads(train_data.dataset.profile)) == ("synthetic", {"files": 16})
    assert train_data.dataset.digest == scored.dataset.digest  # the same 8 images and masks
    assert {t.key: t.value for t in train_data.tags} == {"mlflow.data.context": "training", "num_train": "6",
                                                        "num_val": "2"}
    assert {t.key: t.value for t in scored.tags} == {"mlflow.data.context": "evaluation", "num_scored": "8"}
    run_id = runs.train.info.run_id
    assert {"checkpoints", "config", "figures"} <= {a.path for a in runs.client.list_artifacts(run_id)}
    assert [a.path for a in runs.client.list_artifacts(run_id, "checkpoints")] == ["checkpoints/model.pt"]
    # which config files ran, as filed, and what this run used of them
    assert {a.path for a in runs.client.list_artifacts(run_id, "config")} == {"config/train.json",
                                                                            "config/run_params.json"}
    used = runs.client.download_artifacts(run_id, "config/run_params.json", str(runs.out / "downloaded"))
    used = json.loads(Path(used).read_text())
    assert used["tracked"]["epochs"] == 2 and used["tracked"]["norm"] == "batch"
    assert used["network"]["srb_positions"] == ["before_up1"]
    evaluate_files = {a.path for a in runs.client.list_artifacts(runs.evaluate.info.run_id, "config")}
    assert evaluate_files == {"config/train.json", "config/evaluate.json", "config/run_params.json"}


@pytest.mark.slow
def test_best_checkpoint_is_the_logged_mlflow_model(runs):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", runs.client.tracking_uri)  # runs:/ URIs resolve through it
        model = mlflow.pytorch.load_model(f"runs:/{runs.train.info.run_id}/model").eval()
    best = torch.load(runs.out / "models" / "model.pt", weights_only=True)
    assert all(torch.equal(best[k], v) for k, v in model.state_dict().items())


@pytest.mark.slow
def test_training_ends_with_a_summary(runs):
    history = runs.client.get_metric_history(runs.train.info.run_id, "val_mean_iou")
    best = max(history, key=lambda m: (m.value, -m.step))
    last = max(history, key=lambda m: m.step)
    uri = default_tracking_uri(str(runs.out))
    assert runs.printed == [
        "training ended after 2 epochs",
        f"best val_mean_iou {best.value:.4f} at epoch {best.step}; last {last.value:.4f} (epoch 2)",
        f"best checkpoint: {runs.out / 'models' / 'model.pt'}",
        f"MLflow run {runs.train.info.run_id} in {uri}",
        f"open it: mlflow ui --backend-store-uri {uri}",
    ]


# (the validator's state, the trainer's MLflow run id, the tracking URI: the summary's lines after the first)
SUMMARY_CASES = [
    ({"key_metric_name": "Dice", "best_metric": 0.5, "best_metric_epoch": 1, "metrics": {"Dice": 0.25}, "epoch": 3},
     "abc", "sqlite:////x/mlflow.db",
     ["best Dice 0.5000 at epoch 1; last 0.2500 (epoch 3)", "best checkpoint: <ckpt>", "MLflow run abc in "
      "sqlite:////x/mlflow.db", "open it: mlflow ui --backend-store-uri sqlite:////x/mlflow.db"]),
    ({"key_metric_name": "AUC", "best_metric": -1, "best_metric_epoch": -1, "metrics": {}, "epoch": 0},
     None, "null", ["no validation ran: no best metric", "best checkpoint: <ckpt> (not written)",
                    "MLflow: off (no tracking_uri, or tracking_uri null)"]),
]


@pytest.mark.parametrize("validator,run_id,uri,expected", SUMMARY_CASES, ids=["tracked", "untracked"])
def test_the_summary_says_best_last_checkpoint_and_run(tmp_path, validator, run_id, uri, expected):
    ckpt = tmp_path / "model.pt"
    if run_id is not None:
        ckpt.write_bytes(b"weights")
    trainer = SimpleNamespace(state=SimpleNamespace(epoch=3, mlflow_run_id=run_id))
    summary = TrainingSummary(SimpleNamespace(state=SimpleNamespace(**validator)), str(ckpt), uri)
    lines = summary.lines(trainer)  # type: ignore[arg-type]
    assert lines == ["training ended after 3 epochs", *[e.replace("<ckpt>", str(ckpt)) for e in expected]]


@pytest.mark.slow
def test_evaluate_run_is_nested_under_the_training_run(runs):
    assert runs.evaluate.data.tags["mlflow.parentRunId"] == runs.train.info.run_id
    assert runs.evaluate.info.status == "FINISHED"
    assert {"val_mean_iou", "val_dice"} <= set(runs.evaluate.data.metrics)
    assert runs.evaluate.data.params["num_scored"] == "8"
    assert "eval" in {a.path for a in runs.client.list_artifacts(runs.evaluate.info.run_id)}


@pytest.mark.slow
@pytest.mark.parametrize("off", ["null", None])
def test_tracking_uri_null_turns_tracking_off(tmp_path, off):
    _run(tmp_path, "train", epochs=1, tracking_uri=off)
    assert (tmp_path / "models" / "model.pt").is_file()
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


BUNDLES = ["srb_skin_lesion_segmentation", "srb_3d_segmentation", "srb_chest_xray_classification"]


@pytest.mark.parametrize("bundle", BUNDLES)
@pytest.mark.parametrize("override,iteration_log", [({}, False), ({"log_every_iteration": "true"}, True)])
def test_per_iteration_console_lines_are_off_unless_asked_for(bundle, override, iteration_log):
    parser = ConfigParser()
    parser.read_config(str(BUNDLE.parent / bundle / "configs" / "train.json"))
    parser.update(override)
    assert parser.get_parsed_content("train#stats_handler").iteration_log is iteration_log


@pytest.mark.parametrize(
    "bundle,tiny",
    [
        ("srb_skin_lesion_segmentation", TINY),
        ("srb_3d_segmentation", {"synthetic_samples": 4, "synthetic_size": 32}),
        ("srb_chest_xray_classification", {"image_size": 32, "synthetic_samples": 16}),
    ],
)
def test_each_bundle_keeps_one_mlflow_handler_per_engine_under_tracking_mlflow(tmp_path, bundle, tiny):
    root = BUNDLE.parent / bundle
    workflow = ConfigWorkflow(
        config_file=str(root / "configs" / "train.json"), logging_file=False, workflow_type=None, tracking="mlflow",
        bundle_root=str(root), output_dir=str(tmp_path), **tiny,
    )
    for engine in ("train#trainer", "validate#evaluator"):
        handlers = workflow.parser.get_parsed_content(engine)._event_handlers[Events.STARTED]
        owners = [getattr(h, "__self__", None) for h, *_ in handlers]
        assert [type(o).__name__ for o in owners if isinstance(o, MLFlowHandler)] == ["SRBMLFlowHandler"], engine
    # and the summary when training ends
    completed = workflow.parser.get_parsed_content("train#trainer")._event_handlers[Events.COMPLETED]
    assert len([h for h, *_ in completed if isinstance(h, TrainingSummary)]) == 1
