from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_srb.data import load_decathlon_data, make_synthetic_decathlon, split_datalist
from monai_srb.data.decathlon import SYNTHETIC_LABELS


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(make_synthetic_decathlon(tmp_path_factory.mktemp("msd"), num_train=3, num_test=1, size=24))


def _edit_json(root: Path, edit: Callable[[dict], None]) -> None:
    properties = json.loads((root / "dataset.json").read_text())
    edit(properties)
    (root / "dataset.json").write_text(json.dumps(properties))


def _resave(path: Path, array: np.ndarray) -> None:
    img = nib.load(path)
    nib.save(nib.Nifti1Image(array, img.affine), path)


def _truncate(path: Path) -> None:
    data = gzip.compress(gzip.decompress(path.read_bytes()))
    path.write_bytes(data[: len(data) // 2])


# (case, how to break the data set, load_decathlon_data kwargs, what the error must name)
BAD_CASES = [
    ("no dataset.json", lambda r: (r / "dataset.json").unlink(), {}, "dataset.json"),
    ("not JSON", lambda r: (r / "dataset.json").write_text("{training: ["), {}, "dataset.json"),
    ("no training key", lambda r: _edit_json(r, lambda p: p.pop("training")), {}, "'training'"),
    ("empty training", lambda r: _edit_json(r, lambda p: p.update(training=[])), {}, "'training'"),
    ("entry without label", lambda r: _edit_json(r, lambda p: p["training"][1].pop("label")), {}, "synthetic_001"),
    ("missing image", lambda r: (r / "imagesTr" / "synthetic_001.nii.gz").unlink(), {}, "imagesTr/synthetic_001"),
    ("missing label", lambda r: (r / "labelsTr" / "synthetic_002.nii.gz").unlink(), {}, "labelsTr/synthetic_002"),
    (
        "unreadable image",
        lambda r: (r / "imagesTr" / "synthetic_000.nii.gz").write_bytes(b"not a nifti"),
        {},
        "imagesTr/synthetic_000",
    ),
    (
        "label of another size",
        lambda r: _resave(r / "labelsTr" / "synthetic_001.nii.gz", np.zeros((8, 8, 8), np.uint8)),
        {},
        "labelsTr/synthetic_001",
    ),
    (
        "truncated label data",
        lambda r: _truncate(r / "labelsTr" / "synthetic_002.nii.gz"),
        {"read_data": True},
        "labelsTr/synthetic_002",
    ),
    (
        "label value out of range",
        lambda r: _resave(
            r / "labelsTr" / "synthetic_000.nii.gz",
            np.full(nib.load(r / "labelsTr" / "synthetic_000.nii.gz").shape, 5, np.uint8),
        ),
        {"read_data": True, "num_classes": 3},
        "labelsTr/synthetic_000",
    ),
    ("labels of another task", lambda r: None, {"num_classes": 2}, "dataset.json"),
    ("two-channel image expected", lambda r: None, {"in_channels": 2}, "imagesTr/synthetic_000"),
    (
        "missing test image",
        lambda r: (r / "imagesTs" / "synthetic_003.nii.gz").unlink(),
        {"data_list_key": "test"},
        "imagesTs/synthetic_003",
    ),
]


@pytest.mark.parametrize("case,breaker,kwargs,named", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_data_raises_value_error_naming_the_file(synthetic, tmp_path, case, breaker, kwargs, named):
    root = tmp_path / "msd"
    shutil.copytree(synthetic, root)
    breaker(root)
    with pytest.raises(ValueError, match=named):
        load_decathlon_data(root, **kwargs)


def test_loads_relative_paths_as_absolute_and_checks_everything(synthetic):
    train = load_decathlon_data(synthetic, num_classes=3, in_channels=1, read_data=True)
    assert [Path(d["image"]).name for d in train] == [f"synthetic_00{i}.nii.gz" for i in range(3)]
    assert all(Path(d[k]).is_absolute() and Path(d[k]).is_file() for d in train for k in ("image", "label"))
    (test,) = load_decathlon_data(synthetic, "test", in_channels=1, read_data=True)
    assert set(test) == {"image"} and Path(test["image"]).parent.name == "imagesTs"


@pytest.mark.parametrize("n,fraction,num_val", [(2, 0.25, 1), (4, 0.25, 1), (8, 0.25, 2), (9, 0.5, 4), (5, 0.99, 4)])
def test_split_is_seeded_disjoint_and_complete(n, fraction, num_val):
    items = [{"image": str(i)} for i in range(n)]
    train, val = split_datalist(items, fraction, seed=3)
    assert len(val) == num_val and len(train) == n - num_val
    assert sorted(train + val, key=lambda d: int(d["image"])) == items
    assert split_datalist(items, fraction, seed=3) == (train, val)
    assert train == sorted(train, key=lambda d: int(d["image"]))


@pytest.mark.parametrize(
    "n,fraction,match", [(1, 0.25, "at least 2"), (4, 0.0, "val_fraction"), (4, 1.0, "val_fraction")]
)
def test_split_rejects(n, fraction, match):
    with pytest.raises(ValueError, match=match):
        split_datalist([{"image": str(i)} for i in range(n)], fraction)


def test_synthetic_data_set_is_msd_format_and_deterministic(synthetic, tmp_path):
    properties = json.loads((synthetic / "dataset.json").read_text())
    assert properties["labels"] == SYNTHETIC_LABELS and properties["modality"] == {"0": "MRI"}
    assert properties["numTraining"] == 3 and properties["test"] == ["./imagesTs/synthetic_003.nii.gz"]
    # More volumes start with the same ones; writing again gives the same voxels and affines.
    again = Path(make_synthetic_decathlon(tmp_path / "again", num_train=4, num_test=0, size=24))
    for name in ("imagesTr/synthetic_000.nii.gz", "labelsTr/synthetic_002.nii.gz"):
        a, b = nib.load(synthetic / name), nib.load(again / name)
        np.testing.assert_array_equal(np.asanyarray(a.dataobj), np.asanyarray(b.dataobj))
        np.testing.assert_array_equal(a.affine, b.affine)
    assert not list(synthetic.rglob(".*"))  # no temporary files left behind


def test_synthetic_lesion_class_needs_context(tmp_path):
    root = Path(make_synthetic_decathlon(tmp_path, num_train=6, num_test=0, size=40))
    cores: dict[int, list[np.ndarray]] = {0: [], 2: []}
    organ_shift, noise = [], []
    for i in range(6):
        img = nib.load(root / "imagesTr" / f"synthetic_{i:03d}.nii.gz")
        assert np.allclose(np.abs(np.diag(img.affine)[:3]), (1.5, 1.5, 2.0)) and img.affine[0, 0] < 0
        image = torch.as_tensor(img.get_fdata(), dtype=torch.float32)
        label = np.asanyarray(nib.load(root / "labelsTr" / f"synthetic_{i:03d}.nii.gz").dataobj)
        # Sphere cores: where the 3x3x3 mean is far above the noise (the organ shift is not).
        local = torch.nn.functional.avg_pool3d(image[None, None], 3, stride=1, padding=1, count_include_pad=False)[0, 0]
        core = local.numpy() > 135
        for c in cores:
            cores[c].append(image.numpy()[core & (label == c)])
        organ_shift.append(image.numpy()[(label == 1) & ~core].mean() - image.numpy()[(label == 0) & ~core].mean())
        noise.append(image.numpy()[(label == 0) & ~core].std())
    outside, lesion = np.concatenate(cores[0]), np.concatenate(cores[2])
    # Spheres outside the organ are as bright as lesions but labelled background ...
    assert outside.size > 100 and lesion.size > 100
    assert abs(outside.mean() - lesion.mean()) < 5.0
    # ... and the organ they sit in is faint: well within one noise standard deviation of the background.
    assert 0.3 * np.mean(noise) < np.mean(organ_shift) < np.mean(noise)
