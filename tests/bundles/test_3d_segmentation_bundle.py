from __future__ import annotations

import csv
import json
import shutil
import socket
from pathlib import Path

import mlflow
import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ckpt_export, run, verify_net_in_out

from monai_srb.data import make_synthetic_decathlon
from monai_srb.tracking import default_tracking_uri

# MONAI warns on every config it parses that configs run code; these are the bundle's own.
pytestmark = pytest.mark.filterwarnings("ignore:parsing config_file:UserWarning")

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "srb_3d_segmentation"
CONFIGS = BUNDLE / "configs"
META = str(CONFIGS / "metadata.json")
# 3 training + 1 validation volume of at most 32^3, one 32^3 patch per step: seconds per epoch on a CPU. (Smaller
# patches leave before_up4 a 1^3 map, on which the SRB's batch norm cannot train with one patch per batch.)
TINY = {"synthetic_samples": 4, "synthetic_size": 32, "batch_size": 1, "num_samples": 1, "sw_batch_size": 2}


def _configs(*extra: str) -> list[str]:
    return [str(CONFIGS / f"{name}.json") for name in ("train", *extra)]


def _run(output_dir: Path, *extra: str, **overrides: object) -> None:
    run(
        config_file=_configs(*extra),
        meta_file=META,
        logging_file=False,  # keep pytest's logging setup
        bundle_root=str(BUNDLE),
        output_dir=str(output_dir),
        **{**TINY, **overrides},
    )


def _runs(output_dir: Path) -> tuple[mlflow.MlflowClient, list[mlflow.entities.Run]]:
    client = mlflow.MlflowClient(default_tracking_uri(str(output_dir)))
    experiment = client.get_experiment_by_name("srb_3d_segmentation")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    return client, runs


def _train_run(output_dir: Path) -> tuple[mlflow.MlflowClient, mlflow.entities.Run]:
    client, runs = _runs(output_dir)
    (train_run,) = [r for r in runs if r.info.run_name != "evaluate"]
    return client, train_run


def _history(client: mlflow.MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output_dir = tmp_path_factory.mktemp("srb3d")
    _run(output_dir, epochs=1)
    return output_dir


@pytest.mark.slow
def test_checkpoints_load_with_weights_only(trained):
    best = torch.load(trained / "models" / "model.pt", weights_only=True)
    full = torch.load(trained / "models" / "checkpoint_epoch=1.pt", weights_only=True)
    assert set(full) == {"network", "optimizer", "trainer", "random_states"}
    assert full["trainer"]["iteration"] == full["trainer"]["epoch_length"] == 3
    assert best.keys() == full["network"].keys()
    assert any(k.startswith("srb_before_up4.") for k in best)  # the SRB_F really is in the network


@pytest.mark.slow
def test_mlflow_has_dice_iou_params_and_artifacts(trained):
    client, train_run = _train_run(trained)
    assert train_run.info.status == "FINISHED"
    # Dice_<class>: per foreground class, named from dataset.json's labels (the synthetic set: organ, lesion)
    for key in ("Dice", "IoU", "Dice_organ", "Dice_lesion"):
        history = _history(client, train_run.info.run_id, key)
        assert [step for step, _ in history] == [1] and 0.0 <= history[0][1] <= 1.0
    # one validation volume, so the mean Dice is the mean of its two classes
    per_class = [train_run.data.metrics[f"Dice_{name}"] for name in ("organ", "lesion")]
    assert train_run.data.metrics["Dice"] == pytest.approx(np.mean(per_class), abs=1e-4)
    assert len(_history(client, train_run.info.run_id, "train_loss_iter")) == 3  # one per iteration
    params = train_run.data.params
    assert params["epochs"] == "1" and params["patch_size"] == "[32, 32, 32]" and params["block"] == "srb_fft"
    assert params["norm"] == "instance" and params["split_seed"] == "0"
    assert (params["num_train"], params["num_val"]) == ("3", "1")
    assert (params["network"], params["srb_positions"], params["srb_count"]) == ("SRBUNet", "['before_up4']", "1")
    assert {a.path for a in client.list_artifacts(train_run.info.run_id)} >= {"checkpoints", "config"}


@pytest.mark.slow
def test_evaluate_on_the_validation_split_recomputes_the_best_checkpoints_metrics(trained):
    _run(trained, "evaluate", evaluate_split="val")
    with open(trained / "eval" / "metrics.csv") as f:
        metrics = {name: float(value) for name, value in csv.reader(f)}
    client, train_run = _train_run(trained)
    (eval_run,) = [r for r in _runs(trained)[1] if r.info.run_name == "evaluate"]
    best_dice = max(v for _, v in _history(client, train_run.info.run_id, "Dice"))
    assert metrics["Dice"] == pytest.approx(best_dice, abs=1e-6)
    assert eval_run.data.metrics["Dice"] == pytest.approx(best_dice, abs=1e-6)
    assert eval_run.data.metrics["IoU"] == pytest.approx(metrics["IoU"], abs=1e-6)
    assert eval_run.data.params["evaluate_split"] == "val" and eval_run.data.params["num_scored"] == "1"
    assert (trained / "eval" / "Dice_raw.csv").is_file()


def _hippocampus_like(root: Path, num: int) -> Path:
    """A tiny synthetic Decathlon folder whose dataset.json names the classes as MSD Task04 does."""
    data = Path(make_synthetic_decathlon(root, num_train=num, num_test=0, size=32, seed=7))
    properties = json.loads((data / "dataset.json").read_text())
    properties["labels"] = {"0": "background", "1": "Anterior", "2": "Posterior"}
    (data / "dataset.json").write_text(json.dumps(properties))
    return data


@pytest.mark.slow
def test_evaluate_scores_every_case_of_another_decathlon_folder(trained, tmp_path):
    data = _hippocampus_like(tmp_path / "data", num=3)
    out = tmp_path / "eval_out"
    _run(out, "evaluate", dataset_dir=str(data), ckpt_path=str(trained / "models" / "model.pt"))
    _, runs = _runs(out)
    (eval_run,) = runs
    assert eval_run.info.run_name == "evaluate" and eval_run.data.params["num_scored"] == "3"
    assert {"Dice", "IoU", "Dice_anterior", "Dice_posterior"} <= set(eval_run.data.metrics)
    with open(out / "eval" / "Dice_raw.csv") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 1 + 3  # header, then one row per case: all of them, no split
    assert sorted(Path(r[0]).name for r in rows[1:]) == [f"synthetic_{i:03d}.nii.gz" for i in range(3)]
    with open(out / "eval" / "metrics.csv") as f:
        assert {name for name, _ in csv.reader(f)} >= {"Dice_anterior", "Dice_posterior"}


@pytest.mark.slow
def test_inference_writes_labels_with_the_inputs_affine(trained):
    _run(trained, "inference", ckpt_path=str(trained / "models" / "model.pt"))
    images = sorted((trained / "synthetic_data" / "imagesTs").glob("*.nii.gz"))
    assert len(images) == 2
    for image_path in images:
        image = nib.load(image_path)
        pred = nib.load(trained / "predictions" / image_path.name.replace(".nii.gz", "_seg.nii.gz"))
        np.testing.assert_allclose(pred.affine, image.affine, atol=1e-5)
        assert pred.shape == image.shape and pred.get_data_dtype() == np.uint8
        assert set(np.unique(np.asanyarray(pred.dataobj)).tolist()) <= {0, 1, 2}


@pytest.mark.slow
@pytest.mark.parametrize("listed", [True, False], ids=["decathlon_training_list", "plain_nifti_folder"])
def test_inference_on_a_decathlon_list_or_a_plain_folder(trained, tmp_path, listed):
    source = trained / "synthetic_data"
    if listed:  # a Decathlon folder without a test list, as MSD Task04 here: predict its training images
        folder, overrides, names = source, {"infer_list_key": "training"}, [f"synthetic_{i:03d}" for i in range(4)]
    else:
        folder = tmp_path / "volumes"
        folder.mkdir()
        for path in sorted((source / "imagesTs").glob("*.nii.gz")):
            shutil.copy(path, folder / path.name)
        (folder / "notes.txt").write_text("not an image")
        overrides, names = {}, ["synthetic_004", "synthetic_005"]
    out = tmp_path / "out"
    _run(out, "inference", dataset_dir=str(folder), ckpt_path=str(trained / "models" / "model.pt"), **overrides)
    assert sorted(p.name for p in (out / "predictions").iterdir()) == [f"{n}_seg.nii.gz" for n in names]


@pytest.mark.slow
def test_an_empty_folder_is_refused_for_inference(trained, tmp_path):
    with pytest.raises(Exception) as info:
        _run(tmp_path / "out", "inference", dataset_dir=str(tmp_path), ckpt_path=str(trained / "models" / "model.pt"))
    message = "neither a dataset.json nor any .nii"
    assert any(isinstance(e, ValueError) and message in str(e) for e in _causes(info.value))


def _causes(error: BaseException) -> list[BaseException]:
    causes = [error]
    while causes[-1].__cause__ is not None:
        causes.append(causes[-1].__cause__)
    return causes


def _parsed(output_dir: Path, key: str, **overrides: object) -> object:
    parser = ConfigParser()
    parser.read_config(_configs())
    parser.update({"bundle_root": str(BUNDLE), "output_dir": str(output_dir), "device": "cpu", **overrides})
    return parser.get_parsed_content(key)


def test_every_training_seed_validates_on_the_same_volumes(tmp_path):
    splits = [_parsed(tmp_path, "split", seed=seed, synthetic_samples=8) for seed in range(5)]
    assert all(split == splits[0] for split in splits)
    assert len(splits[0][1]) == 2  # val_fraction 0.25 of 8
    other = _parsed(tmp_path, "split", split_seed=3, synthetic_samples=8)
    assert other[1] != splits[0][1]  # the split seed, not the training seed, moves the validation set


HIPPOCAMPUS = BUNDLE.parents[2] / "shared" / "data" / "msd_hippocampus"


@pytest.mark.skipif(not (HIPPOCAMPUS / "dataset.json").is_file(), reason="../shared/data/msd_hippocampus is absent")
def test_hippocampus_splits_160_40_and_names_its_classes(tmp_path):
    overrides = {"dataset_dir": str(HIPPOCAMPUS), "val_fraction": 0.2, "check_data": False}
    train, val = _parsed(tmp_path, "split", **overrides)
    assert (len(train), len(val)) == (160, 40)
    assert _parsed(tmp_path, "split", seed=2, **overrides)[1] == val
    assert _parsed(tmp_path, "class_names", **overrides) == ["anterior", "posterior"]


@pytest.mark.parametrize(
    "norm,layer,absent",
    [
        ("instance", torch.nn.InstanceNorm3d, torch.nn.BatchNorm3d),
        ("batch", torch.nn.BatchNorm3d, torch.nn.InstanceNorm3d),
    ],
)
def test_norm_override_sets_the_unets_norm(tmp_path, norm, layer, absent):
    net = _parsed(tmp_path, "network_def", norm=norm, srb_positions=[])
    norms = [m for m in net.modules() if isinstance(m, (torch.nn.InstanceNorm3d, torch.nn.BatchNorm3d))]
    assert len(norms) == 18 and all(isinstance(m, layer) and m.affine for m in norms)  # 9 two-conv blocks
    assert not any(isinstance(m, absent) for m in net.modules())


@pytest.mark.parametrize("norm", ["group", "Batch", None])
def test_an_unknown_norm_is_refused(tmp_path, norm):
    with pytest.raises(Exception) as info:
        _parsed(tmp_path, "network_def", norm=norm)
    assert any(
        isinstance(e, ValueError) and f"'{norm}'" in str(e) and "Available options are" in str(e)
        for e in _causes(info.value)
    )


@pytest.mark.slow
def test_batch_norm_run_logs_its_norm(tmp_path):
    _run(tmp_path, epochs=1, norm="batch")
    client, train_run = _train_run(tmp_path)
    assert train_run.data.params["norm"] == "batch"
    assert {"Dice", "Dice_organ", "Dice_lesion"} <= set(train_run.data.metrics)


@pytest.mark.slow
def test_same_seed_gives_identical_metrics(trained, tmp_path):
    _run(tmp_path, epochs=1)
    (client_a, run_a), (client_b, run_b) = _train_run(trained), _train_run(tmp_path)
    for key in ("Dice", "IoU", "train_loss_iter"):
        assert _history(client_a, run_a.info.run_id, key) == _history(client_b, run_b.info.run_id, key)


@pytest.mark.slow
def test_resume_continues_at_the_next_epoch(trained, tmp_path):
    _run(tmp_path, epochs=2, resume_from=str(trained / "models" / "checkpoint_epoch=1.pt"))
    client, resumed = _train_run(tmp_path)
    assert [step for step, _ in _history(client, resumed.info.run_id, "Dice")] == [2]
    resumed_state = torch.load(tmp_path / "models" / "checkpoint_epoch=2.pt", weights_only=True)
    assert resumed_state["trainer"]["iteration"] == 2 * resumed_state["trainer"]["epoch_length"]
    # The same second epoch as a run never interrupted: the same patches and flips, bit-identical weights.
    _run(tmp_path / "whole", epochs=2)
    whole_client, whole = _train_run(tmp_path / "whole")
    for key in ("Dice", "IoU"):
        assert _history(client, resumed.info.run_id, key) == _history(whole_client, whole.info.run_id, key)[1:]
    expected = torch.load(tmp_path / "whole" / "models" / "checkpoint_epoch=2.pt", weights_only=True)["network"]
    assert all(torch.equal(resumed_state["network"][k], expected[k]) for k in expected)


def test_bad_data_stops_before_training(tmp_path):
    data = Path(make_synthetic_decathlon(tmp_path / "data", num_train=4, num_test=1, size=24))
    label = data / "labelsTr" / "synthetic_002.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.uint8), np.eye(4)), label)
    with pytest.raises(Exception) as info:
        _run(tmp_path / "out", dataset_dir=str(data), epochs=1)
    causes = [info.value]
    while causes[-1].__cause__ is not None:
        causes.append(causes[-1].__cause__)
    assert any(isinstance(e, ValueError) and str(label) in str(e) for e in causes)
    assert not list((tmp_path / "out").rglob("*.pt"))


@pytest.mark.slow
def test_network_matches_metadata_and_exports_to_torchscript(trained, tmp_path):
    verify_net_in_out(net_id="network_def", meta_file=META, config_file=_configs(), device="cpu", n=2)
    ts_path = tmp_path / "model.ts"
    ckpt_export(
        net_id="network_def", filepath=str(ts_path), ckpt_file=str(trained / "models" / "model.pt"),
        meta_file=META, config_file=_configs(), bundle_root=str(BUNDLE),
    )
    parser = ConfigParser()
    parser.read_config(_configs())
    net = parser.get_parsed_content("network_def").eval()
    net.load_state_dict(torch.load(trained / "models" / "model.pt", weights_only=True))
    scripted = torch.jit.load(str(ts_path)).eval()
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x))


@pytest.mark.parametrize("block,positions", [("srb_fft", ["before_up4", "before_up2"]), ("srb_aom", ["before_up4"])])
def test_network_choices_run_under_sliding_window(block, positions):
    parser = ConfigParser()
    parser.read_config(_configs())
    parser.update({"block": block, "srb_positions": positions, "device": "cpu"})
    net = parser.get_parsed_content("network").eval()
    inferer = parser.get_parsed_content("validate#inferer")
    with torch.no_grad():
        out = inferer(torch.randn(1, 1, 40, 30, 32), net)
    assert out.shape == (1, 3, 40, 30, 32)


@pytest.mark.slow
def test_multi_gpu_config_runs_as_one_gloo_process(tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(key, value)
    _run(tmp_path, "multi_gpu_train", epochs=1)
    assert not torch.distributed.is_initialized()
    assert "network" in torch.load(tmp_path / "models" / "checkpoint_epoch=1.pt", weights_only=True)
    client, ddp_run = _train_run(tmp_path)
    assert "Dice" in ddp_run.data.metrics
