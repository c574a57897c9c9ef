"""Evaluate and inference across the three bundles: the split an evaluate scores, predictions on a user's folder
with nothing else written, and inference.json on its own as the model-zoo CI runs it. No training: a checkpoint of
the untrained network stands in for a trained one."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow, run
from PIL import Image

pytestmark = pytest.mark.filterwarnings("ignore:parsing config_file:UserWarning")

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
CHEST, SKIN, SEG3D = "srb_chest_xray_classification", "srb_skin_lesion_segmentation", "srb_3d_segmentation"
# Tiny synthetic data sets and networks, no MLflow tracking (what evaluate logs there is tested with each bundle).
TINY: dict[str, dict[str, Any]] = {
    CHEST: {"image_size": 32, "synthetic_samples": 16, "batch_size": 8, "num_cam_images": 1, "tracking_uri": "null"},
    SKIN: {"image_size": 32, "synthetic_samples": 8, "batch_size": 2, "tracking_uri": "null"},
    SEG3D: {"synthetic_samples": 4, "synthetic_size": 32, "batch_size": 1, "sw_batch_size": 2, "tracking_uri": "null"},
}
# Items of the synthetic data sets: every one, and the validation split training uses.
SIZES = {CHEST: {"all": 16, "val": 3}, SKIN: {"all": 8, "val": 2}, SEG3D: {"all": 4, "val": 1}}
WHAT = {CHEST: "images", SKIN: "images", SEG3D: "volumes"}
# inference.json ids that differ from train.json on purpose (inference reads its own images, parses fewer flags, and
# its weights where the model zoo puts them, <bundle_root>/models/model.pt, not where training writes them)
OWN_IDS = {"imports", "config_files", "image_channels", "flags", "initialize", "run", "finalize", "ckpt_path"}


def _files(bundle: str, *names: str) -> list[str]:
    return [str(BUNDLES / bundle / "configs" / f"{name}.json") for name in names]


def _run(bundle: str, names: tuple[str, ...], output_dir: Path, **overrides: Any) -> None:
    run(
        config_file=_files(bundle, *names), logging_file=False, bundle_root=str(BUNDLES / bundle),
        output_dir=str(output_dir), **{**TINY[bundle], **overrides},
    )


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``model.pt`` of each bundle's untrained network, seeded, at the TINY sizes."""
    paths = {}
    for bundle in (CHEST, SKIN, SEG3D):
        folder = tmp_path_factory.mktemp(f"ckpt_{bundle}")
        parser = ConfigParser()
        parser.read_config(_files(bundle, "train"))
        parser.update({"bundle_root": str(BUNDLES / bundle), "output_dir": str(folder), "device": "cpu"})
        parser.update(TINY[bundle])
        torch.manual_seed(0)
        paths[bundle] = folder / "model.pt"
        torch.save(parser.get_parsed_content("network_def").state_dict(), paths[bundle])
    return paths


def _user_folder(bundle: str, folder: Path) -> list[str]:
    """A user's folder of unlabelled inputs (and a file that is not one); returns the prediction files expected."""
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")
    rng = np.random.default_rng(0)
    if bundle == SEG3D:
        for name in ("case_a", "case_b"):
            nib.save(nib.Nifti1Image(rng.random((32, 28, 30)).astype(np.float32), np.eye(4)), folder / f"{name}.nii.gz")
        return ["case_a_seg.nii.gz", "case_b_seg.nii.gz"]
    for name, size in (("a.png", (40, 30)), ("b.jpg", (30, 40)), ("c.bmp", (32, 32))):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / name)
    return ["predictions.csv"] if bundle == CHEST else [f"{n}_segmentation.png" for n in "abc"]


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def _prediction(path: Path) -> Any:
    if path.name.endswith(".nii.gz"):
        return nib.load(path).get_fdata().tolist()
    return np.asarray(Image.open(path)).tolist() if path.suffix == ".png" else path.read_text()


def _metrics(output_dir: Path) -> dict[str, str]:
    with open(output_dir / "eval" / "metrics.csv") as f:
        return dict(csv.reader(f))


@pytest.mark.parametrize("bundle", [CHEST, SKIN, SEG3D])
def test_inference_on_a_folder_writes_its_predictions_and_nothing_else(bundle, checkpoints, tmp_path, caplog):
    out, ckpt = tmp_path / "out", str(checkpoints[bundle])
    expected = [f"predictions/{name}" for name in _user_folder(bundle, tmp_path / "inputs")]
    infer = {"ckpt_path": ckpt, "input_dir": str(tmp_path / "inputs"), "prediction_dir": str(out / "predictions")}
    _run(bundle, ("train", "inference"), out, **infer)
    assert sorted(_snapshot(out)) == expected  # no data set built, no store, no lock left
    if bundle == CHEST:  # one row of per-class probabilities per image, named
        with open(out / "predictions" / "predictions.csv") as f:
            rows = list(csv.DictReader(f))
        assert [r["image"] for r in rows] == ["a.png", "b.jpg", "c.bmp"] and len(rows[0]) == 1 + 14
        assert all(0.0 < float(v) < 1.0 for r in rows for k, v in r.items() if k != "image")

    caplog.set_level(logging.INFO, logger="monai_srb.bundle.data")
    _run(bundle, ("train", "evaluate"), out, ckpt_path=ckpt)
    # evaluate scores every item of the data set by default, and says so
    count = SIZES[bundle]["all"]
    assert f"evaluate: scoring {count} {WHAT[bundle]}, evaluate_split 'all' of " in caplog.text
    before, scores = _snapshot(out), _metrics(out)
    _run(bundle, ("train", "inference"), out, **infer)
    assert _snapshot(out) == before  # the same predictions again; nothing else touched
    _run(bundle, ("train", "evaluate"), out, ckpt_path=ckpt)
    assert _metrics(out) == scores


@pytest.mark.parametrize("bundle", [CHEST, SKIN, SEG3D])
def test_evaluate_split_val_scores_the_training_validation_split(bundle, checkpoints, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="monai_srb.bundle.data")
    overrides = {**TINY[bundle], "evaluate_split": "val", "ckpt_path": str(checkpoints[bundle])}
    workflow = ConfigWorkflow(
        config_file=_files(bundle, "train", "evaluate"), logging_file=False, workflow_type=None,
        bundle_root=str(BUNDLES / bundle), output_dir=str(tmp_path), **overrides,
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    count = SIZES[bundle]["val"]
    assert f"evaluate: scoring {count} {WHAT[bundle]}, evaluate_split 'val' of " in caplog.text
    split = workflow.parser.get_parsed_content("datalists" if bundle == CHEST else "split")
    val = split["val"] if bundle == CHEST else split[1]
    scored = workflow.parser.get_parsed_content("validate#dataset")
    assert len(val) == count and [item["image"] for item in scored.data] == [item["image"] for item in val]


@pytest.mark.parametrize(
    "bundle,split,message",
    [
        (SKIN, "train", "override 'evaluate_split' must be one of 'val', 'test', 'all'; got 'train' (str)."),
        (SEG3D, "Val", "override 'evaluate_split' must be one of 'val', 'test', 'all'; got 'Val' (str)."),
        (CHEST, "test", "has no 'test' split to score (its splits: 'train', 'val', 'all')."),
    ],
)
def test_a_bad_evaluate_split_is_refused(bundle, split, message, checkpoints, tmp_path):
    workflow = ConfigWorkflow(
        config_file=_files(bundle, "train", "evaluate"), logging_file=False, workflow_type=None,
        bundle_root=str(BUNDLES / bundle), output_dir=str(tmp_path / "out"), evaluate_split=split,
        ckpt_path=str(checkpoints[bundle]), **TINY[bundle],
    )
    with pytest.raises(Exception) as info:
        workflow.initialize()
        workflow.run()
    errors = []
    e: BaseException | None = info.value
    while e is not None:
        errors.append(e)
        e = e.__cause__ or e.__context__
    assert any(isinstance(e, ValueError) and message in str(e) for e in errors), str(info.value)
    assert not (tmp_path / "out" / "eval").exists()


@pytest.mark.parametrize("bundle", [CHEST, SKIN, SEG3D])
def test_inference_json_runs_on_its_own_as_the_model_zoo_ci_does(bundle, checkpoints, tmp_path):
    train = json.loads((BUNDLES / bundle / "configs" / "train.json").read_text())
    inference = json.loads((BUNDLES / bundle / "configs" / "inference.json").read_text())
    # the ids both define hold the same defaults: merged after train.json, inference.json changes nothing else
    shared = sorted(set(train) & set(inference) - OWN_IDS)
    assert "network_def" in shared and [k for k in shared if train[k] != inference[k]] == []

    expected = _user_folder(bundle, tmp_path / "inputs")
    predictions = {}
    for names in (("inference",), ("train", "inference")):
        out = tmp_path / "_".join(names)
        _run(bundle, names, out, ckpt_path=str(checkpoints[bundle]), input_dir=str(tmp_path / "inputs"),
             prediction_dir=str(out / "pred"))
        assert sorted(p.name for p in (out / "pred").iterdir()) == expected
        predictions[names] = [_prediction(out / "pred" / name) for name in expected]
    assert predictions[("inference",)] == predictions[("train", "inference")]
