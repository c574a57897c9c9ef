from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import mlflow
import monai.bundle
import monai.transforms
import numpy as np
import pytest
import torch
from PIL import Image

from monai_srb.data import CHESTXRAY14_CLASSES
from monai_srb.handlers.cam import GradCAMHandler
from monai_srb.nets.srb_classifiers import SRBDenseNet121, SRBResNet50
from monai_srb.tracking import default_tracking_uri

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "srb_chest_xray_classification"
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
EXPERIMENT = "srb_chest_xray_classification"
# 16 synthetic images: 13 for training (two batches), 3 for validation.
TINY = {"image_size": 32, "synthetic_samples": 16, "batch_size": 8, "epochs": 2, "num_cam_images": 2}


def _run(output_dir: Path, *extra_configs: str, **overrides) -> None:
    """``python -m monai.bundle run`` in-process, with train.json and then ``extra_configs`` merged."""
    files = [str(BUNDLE / "configs" / f"{name}.json") for name in ("train", *extra_configs)]
    monai.bundle.run(
        config_file=files,
        bundle_root=str(BUNDLE),
        logging_file=str(BUNDLE / "configs" / "logging.conf"),
        output_dir=str(output_dir),
        **overrides,
    )


def _runs(tracking_dir: Path, experiment: str = EXPERIMENT) -> list[mlflow.entities.Run]:
    client = mlflow.MlflowClient(default_tracking_uri(str(tracking_dir)))
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id], order_by=["start_time ASC"])


def _history(tracking_dir: Path, run: mlflow.entities.Run, key: str) -> list[tuple[int, float]]:
    client = mlflow.MlflowClient(default_tracking_uri(str(tracking_dir)))
    return [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]


def _shared_store(trained: Path, experiment: str) -> dict[str, str]:
    """Log into the trained run's MLflow store under another experiment: a new SQLite store costs seconds."""
    return {"tracking_uri": default_tracking_uri(str(trained)), "experiment_name": experiment}


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.fixture(autouse=True)
def _no_mlflow_env(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("chest_train")
    _run(out, **TINY)
    return out


@pytest.mark.slow
def test_train_writes_checkpoints_that_load_weights_only(trained):
    models = trained / "models"
    assert sorted(p.name for p in models.iterdir()) == [
        "checkpoint_epoch=1.pt", "checkpoint_epoch=2.pt", "model.pt", "network_config.json"
    ]
    best = torch.load(models / "model.pt", weights_only=True)
    net = SRBDenseNet121(2, 1, 14, spatial_size=32)
    net.load_state_dict(best)
    full = torch.load(models / "checkpoint_epoch=2.pt", weights_only=True)
    assert set(full) == {"model", "optimizer", "lr_scheduler", "trainer", "random_states"}
    assert full["trainer"]["iteration"] == 2 * full["trainer"]["epoch_length"]  # saved after epoch 2


@pytest.mark.slow
def test_train_logs_metrics_and_gradcam_artifacts_to_mlflow(trained):
    (run,) = _runs(trained)
    assert run.info.status == "FINISHED"
    expected = {"train_loss_iter", "train_loss_epoch", "AUC", "Accuracy"}
    expected |= {f"AUC_{name}" for name in CHESTXRAY14_CLASSES}
    assert expected <= set(run.data.metrics)
    assert 0.0 <= run.data.metrics["Accuracy"] <= 1.0
    assert [step for step, _ in _history(trained, run, "AUC")] == [1, 2]
    assert run.data.params["epochs"] == "2" and run.data.params["network"] == "SRBDenseNet121"
    client = mlflow.MlflowClient(default_tracking_uri(str(trained)))
    assert {"checkpoints", "config", "figures"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    figures = [Path(a.path).name for a in client.list_artifacts(run.info.run_id, "figures")]
    cams = [a for a in figures if a.startswith("cam_") and a.endswith(".png")]
    assert len(cams) == 2
    overlay = Image.open(trained / "cam" / cams[0])
    assert overlay.mode == "RGB" and overlay.size == (64, 32)  # input and overlay side by side


@pytest.mark.slow
def test_evaluate_recomputes_best_validation_metrics(trained):
    _run(trained, "evaluate", evaluate_split="val", **TINY)
    with open(trained / "eval" / "metrics.csv") as f:
        metrics = {k: float(v) for k, v in csv.reader(f)}
    (train_run, eval_run) = _runs(trained)
    history = dict(_history(trained, train_run, "AUC"))
    best_epoch = max(history, key=lambda e: (history[e], -e))
    assert metrics["AUC"] == pytest.approx(history[best_epoch], abs=1e-9)
    for name in CHESTXRAY14_CLASSES:
        logged = dict(_history(trained, train_run, f"AUC_{name}"))[best_epoch]
        assert _same(round(metrics[f"AUC_{name}"], 9), round(logged, 9)), name
    per_class = [metrics[f"AUC_{name}"] for name in CHESTXRAY14_CLASSES]
    assert metrics["AUC"] == pytest.approx(np.nanmean(per_class))
    assert metrics["Accuracy"] == pytest.approx(dict(_history(trained, train_run, "Accuracy"))[best_epoch], abs=1e-6)
    assert eval_run.data.params["evaluate_split"] == "val" and eval_run.data.params["num_scored"] == "3"
    assert eval_run.info.run_name == "evaluate" and eval_run.data.metrics["AUC"] == pytest.approx(metrics["AUC"])
    assert len(list((trained / "eval" / "cam").glob("cam_*.png"))) == 2


@pytest.mark.slow
def test_inference_writes_probabilities_per_class(trained, tmp_path):
    _run(trained, "inference", ckpt_path=str(trained / "models" / "model.pt"), **TINY)  # every image of the data set
    with open(trained / "predictions" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["image", *CHESTXRAY14_CLASSES] and len(rows) == 16
    probs = np.array([[float(r[c]) for c in CHESTXRAY14_CLASSES] for r in rows])
    assert ((probs > 0) & (probs < 1)).all()

    # A folder of images, one of them RGB: converted to grey like the training images.
    images = sorted((trained / "synthetic_data" / "images").glob("*.png"))[:2]
    for p in images:
        shutil.copy(p, tmp_path / p.name)
    Image.open(images[0]).convert("RGB").save(tmp_path / "colour.jpg")
    _run(trained, "inference", input_dir=str(tmp_path), prediction_dir=str(tmp_path / "out"),
         ckpt_path=str(trained / "models" / "model.pt"), **TINY)
    with open(tmp_path / "out" / "predictions.csv") as f:
        names = [r["image"] for r in csv.DictReader(f)]
    assert names == sorted([images[0].name, images[1].name, "colour.jpg"])


@pytest.mark.slow
def test_same_seed_gives_identical_training(trained, tmp_path):
    # The first epoch again, from scratch: the same losses, metrics and weights as the trained run's first.
    _run(tmp_path, **{**TINY, "epochs": 1}, **_shared_store(trained, "same_seed"))
    first, (second,) = _runs(trained)[0], _runs(trained, "same_seed")
    for key in ["train_loss_iter", "AUC"] + [f"AUC_{name}" for name in CHESTXRAY14_CLASSES]:
        b = _history(trained, second, key)
        a = _history(trained, first, key)[: len(b)]
        assert len(b) > 0 and all(sa == sb and _same(va, vb) for (sa, va), (sb, vb) in zip(a, b)), key
    w1 = torch.load(trained / "models" / "checkpoint_epoch=1.pt", weights_only=True)["model"]
    w2 = torch.load(tmp_path / "models" / "checkpoint_epoch=1.pt", weights_only=True)["model"]
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


@pytest.mark.slow
def test_resume_continues_at_the_next_epoch(trained, tmp_path):
    checkpoint = trained / "models" / "checkpoint_epoch=1.pt"
    _run(tmp_path, resume_from=str(checkpoint), **TINY, **_shared_store(trained, "resume"))
    (run,) = _runs(trained, "resume")
    assert [step for step, _ in _history(trained, run, "AUC")] == [2]
    assert sorted(p.name for p in (tmp_path / "models").glob("checkpoint_*")) == ["checkpoint_epoch=2.pt"]
    # The trained run went on from that checkpoint uninterrupted: the same second epoch, bit for bit.
    uninterrupted = _runs(trained)[0]
    for key in ["train_loss_iter", "AUC"]:
        assert _history(trained, run, key) == _history(trained, uninterrupted, key)[-len(_history(trained, run, key)) :]
    w1 = torch.load(trained / "models" / "checkpoint_epoch=2.pt", weights_only=True)["model"]
    w2 = torch.load(tmp_path / "models" / "checkpoint_epoch=2.pt", weights_only=True)["model"]
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    # linked to the run that wrote the checkpoint, which finished and keeps its status
    assert run.data.tags["srb.resumed_from_run_id"] == uninterrupted.info.run_id
    assert uninterrupted.info.status == "FINISHED"


def test_resnet50_by_network_def_override(tmp_path):
    # The documented override, `--network_def#_target_ monai_srb.nets.srb_classifiers.SRBResNet50`, also moves
    # the Grad-CAM target to the ResNet's last stage.
    parser = monai.bundle.ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "train.json"))
    parser.update({"bundle_root": str(BUNDLE), "output_dir": str(tmp_path), "image_size": 32})
    parser["network_def#_target_"] = "monai_srb.nets.srb_classifiers.SRBResNet50"
    net = parser.get_parsed_content("network_def")
    assert isinstance(net, SRBResNet50) and net(torch.rand(2, 1, 32, 32)).shape == (2, 14)
    assert parser.get_parsed_content("cam_target_layers") == "layer4"
    data = [{"image": torch.rand(1, 32, 32), "name": "x.png"}]
    cam = GradCAMHandler(net, "layer4", data, tmp_path, class_names=CHESTXRAY14_CLASSES)
    (png,) = cam()
    assert png.parent == tmp_path and png.name.startswith("cam_00_x_") and Image.open(png).size == (64, 32)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "dermamnist.npz").exists(), reason="shared dermamnist.npz not available")
def test_dermamnist_multi_class_subset(trained, tmp_path):
    settings = {**TINY, "epochs": 1, "dataset_dir": str(SHARED / "dermamnist.npz"), "max_samples": 16}
    _run(tmp_path, **settings, **_shared_store(trained, "dermamnist"))
    (run,) = _runs(trained, "dermamnist")
    assert run.data.params["task"] == "multi-class"
    assert {"AUC"} | {f"AUC_{i}" for i in range(7)} <= set(run.data.metrics)
    _run(tmp_path, "inference", ckpt_path=str(tmp_path / "models" / "model.pt"), **settings)
    with open(tmp_path / "predictions" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16 and list(rows[0]) == ["image", *map(str, range(7))]
    assert sum(float(rows[0][str(i)]) for i in range(7)) == pytest.approx(1.0, abs=1e-5)  # softmax


def _bad_dataset(kind: str, root: Path) -> tuple[Path, str]:
    if kind == "empty_folder":
        root.mkdir()
        return root, str(root)
    if kind == "npz_missing_keys":
        np.savez(root.with_suffix(".npz"), train_images=np.zeros((2, 8, 8), np.uint8), train_labels=np.zeros((2, 1)))
        return root.with_suffix(".npz"), "val_images"
    (root / "images").mkdir(parents=True)
    if kind == "csv_missing_columns":
        (root / "Data_Entry_2017.csv").write_text("Image Index,Patient ID\na.png,1\n")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "images" / "a.png")
        return root, "Finding Labels"
    rows = "".join(f"{i}.png,Mass,{i}\n" for i in range(5))
    (root / "Data_Entry_2017.csv").write_text("Image Index,Finding Labels,Patient ID\n" + rows)
    for i in range(5):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "images" / f"{i}.png")
    (root / "images" / "3.png").write_bytes(b"not a png")
    return root, "3.png cannot be read"


def _value_error(e: BaseException | None) -> ValueError | None:
    while e is not None and not isinstance(e, ValueError):
        e = e.__cause__ or e.__context__
    return e


@pytest.mark.parametrize("kind", ["empty_folder", "npz_missing_keys", "csv_missing_columns", "unreadable_image"])
def test_bad_data_fails_before_training(tmp_path, kind):
    dataset, expected = _bad_dataset(kind, tmp_path / kind)
    out = tmp_path / "out"
    with pytest.raises(Exception) as info:
        _run(out, **{**TINY, "dataset_dir": str(dataset)})
    error = _value_error(info.value)
    assert error is not None and expected in str(error), str(info.value)
    assert not (out / "models").exists() and not (out / "mlflow.db").exists()


def test_gradcam_handler_rejects_unknown_layer(tmp_path):
    with pytest.raises(ValueError, match="not a layer of SRBDenseNet121"):
        GradCAMHandler(SRBDenseNet121(2, 1, 3), "features.nope", [], tmp_path)


def _tiny_medmnist(path: Path, num_classes: int = 3) -> Path:
    """A MedMNIST-format multi-class .npz whose class is the brightness of a corner, with its own test split."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 12), ("val", 6), ("test", 6)):
        labels = np.arange(n) % num_classes
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        images[:, :8, :8] += (60 * labels).astype(np.uint8)[:, None, None]
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels[:, None]
    np.savez(path, **arrays)
    return path


@pytest.mark.slow
def test_test_split_at_end_top1_accuracy_and_kept_checkpoints(trained, tmp_path):
    npz = _tiny_medmnist(tmp_path / "tiny.npz")
    settings = {**TINY, "dataset_dir": str(npz), "batch_size": 6, "keep_checkpoints": 1, "test_at_end": "yes"}
    _run(tmp_path / "out", **settings, **_shared_store(trained, "test_at_end"))
    models = tmp_path / "out" / "models"
    assert sorted(p.name for p in models.glob("checkpoint_*")) == ["checkpoint_epoch=2.pt"]  # the newest one only
    (run,) = _runs(trained, "test_at_end")
    assert {"Accuracy", "test_AUC", "test_Accuracy"} | {f"test_AUC_{i}" for i in range(3)} <= set(run.data.metrics)

    # test_Accuracy is the top-1 accuracy of the best checkpoint on the test split
    net = SRBDenseNet121(2, 1, 3, spatial_size=32)
    net.load_state_dict(torch.load(models / "model.pt", weights_only=True))
    net.eval()
    preprocess = monai.transforms.Compose(
        [monai.transforms.EnsureType(dtype=torch.float32), monai.transforms.ScaleIntensity(minv=0.0, maxv=1.0),
         monai.transforms.Resize([32, 32])]
    )
    with np.load(npz) as data:
        images = torch.stack([preprocess(image[None]) for image in data["test_images"]])
        labels = torch.as_tensor(data["test_labels"][:, 0])
    with torch.no_grad():
        top1 = (net(images).argmax(dim=1) == labels).float().mean().item()
    assert run.data.metrics["test_Accuracy"] == pytest.approx(top1, abs=1e-6)
    with open(tmp_path / "out" / "test" / "metrics.csv") as f:
        assert float(dict(csv.reader(f))["test_Accuracy"]) == pytest.approx(top1, abs=1e-6)


def test_test_at_end_without_a_test_split_stops_before_training(tmp_path):
    with pytest.raises(Exception) as info:
        _run(tmp_path, test_at_end=True, **TINY)
    error = _value_error(info.value)
    assert error is not None and "has no 'test' split to score (its splits: 'train', 'val')" in str(error)
    assert list((tmp_path / "models").glob("*.pt")) == []
