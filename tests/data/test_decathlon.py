from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monai_srb.data import kfold_split, load_decathlon_data, load_nifti_images, make_synthetic_decathlon, split_datalist


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


@pytest.mark.parametrize(
    "images, named",
    [
        (["a.nii.gz", "b.nii.gz", "c.nii.gz", "b.nii.gz"], r"items 1 and 3 are the same image 'b.nii.gz'"),
        (["/d/a.nii.gz", "/d/b.nii.gz", "/d/./a.nii.gz", "/d/c.nii.gz"], r"items 0 and 2 .* '/d/./a.nii.gz'"),
        ([["t1/a", "t2/a"], ["t1/b", "t2/b"], ["t1/a", "t2/a"], ["t1/c", "t2/c"]], r"items 0 and 2"),
    ],
    ids=["repeated path", "same path spelt differently", "repeated image list"],
)
def test_split_refuses_an_image_listed_twice(images, named):
    # A repeated dataset.json entry would otherwise land on both sides of some split.
    items = [{"image": image, "label": f"label_{i}"} for i, image in enumerate(images)]
    for split in (lambda d: split_datalist(d, 0.5), lambda d: kfold_split(d, 0, 2)):
        with pytest.raises(ValueError, match=named + r".*list each image once"):
            split(items)


HIPPOCAMPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "msd_hippocampus"


def _point_outside(root: Path, kind: str) -> None:
    # Every target exists, so only the containment check can refuse it.
    outside = root.parent / "outside"
    outside.mkdir()
    shutil.copy(root / "labelsTr" / "synthetic_001.nii.gz", outside / "label.nii.gz")
    shutil.copy(root / "imagesTs" / "synthetic_003.nii.gz", outside / "image.nii.gz")
    if kind == "dot-dot label":
        _edit_json(root, lambda p: p["training"][1].update(label="./labelsTr/../../outside/label.nii.gz"))
    elif kind == "absolute label":
        _edit_json(root, lambda p: p["training"][1].update(label=str(outside / "label.nii.gz")))
    elif kind == "dot-dot in an image list":
        outside_image = "../outside/image.nii.gz"
        _edit_json(root, lambda p: p["training"][1].update(image=[p["training"][1]["image"], outside_image]))
    elif kind == "dot-dot test image":
        _edit_json(root, lambda p: p.update(test=["../outside/image.nii.gz"]))


@pytest.mark.parametrize(
    "kind, key, named",
    [
        ("dot-dot label", "training", r"'training' entry 1 .*\['./labelsTr/../../outside/label.nii.gz'\]"),
        ("absolute label", "training", r"'training' entry 1 .*outside/label.nii.gz'\]"),
        ("dot-dot in an image list", "training", r"'training' entry 1 .*\['../outside/image.nii.gz'\]"),
        ("dot-dot test image", "test", r"'test' entry 0 .*\['../outside/image.nii.gz'\]"),
    ],
)
def test_entry_pointing_outside_the_data_set_is_refused(synthetic, tmp_path, kind, key, named):
    root = tmp_path / "msd"
    shutil.copytree(synthetic, root)
    _point_outside(root, kind)
    with pytest.raises(ValueError, match=named) as info:
        load_decathlon_data(root, key)
    assert f"points outside the data set folder {root.resolve()} " in str(info.value)


def test_paths_inside_the_data_set_are_accepted_however_spelt(synthetic, tmp_path):
    root = tmp_path / "msd"
    shutil.copytree(synthetic, root)
    (tmp_path / "disk").mkdir()
    shutil.move(root / "labelsTr", tmp_path / "disk" / "labelsTr")
    (root / "labelsTr").symlink_to(tmp_path / "disk" / "labelsTr")  # data kept elsewhere, linked in
    _edit_json(root, lambda p: p["training"][0].update(image=str(root.resolve() / "imagesTr" / "synthetic_000.nii.gz")))
    _edit_json(root, lambda p: p["training"][1].update(image="./imagesTr/../imagesTr/synthetic_001.nii.gz"))
    train = load_decathlon_data(root, num_classes=3, in_channels=1)
    assert [Path(d["image"]).name for d in train] == [f"synthetic_00{i}.nii.gz" for i in range(3)]


def _shift_affine(path: Path, delta: np.ndarray) -> None:
    img = nib.load(path)
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine + delta), path)


def _delta(row: int, col: int, value: float) -> np.ndarray:
    delta = np.zeros((4, 4))
    delta[row, col] = value
    return delta


@pytest.mark.parametrize(
    "delta, kwargs, refused",
    [
        (_delta(0, 3, 0.5), {}, "0.5"),  # origin moved half a voxel
        (_delta(0, 0, 3.0), {}, "3"),  # x axis flipped back (-1.5 -> 1.5)
        (_delta(2, 2, 0.01), {}, "0.01"),  # slice spacing 2.0 vs 2.01
        (_delta(0, 3, 0.01), {"affine_tol": 0.1}, None),  # within a looser tolerance
        (_delta(1, 3, 1e-5), {}, None),  # float32 header rounding
    ],
    ids=["origin moved", "axis flipped", "spacing changed", "within affine_tol", "header rounding"],
)
def test_label_affine_differing_from_its_image_is_refused(synthetic, tmp_path, delta, kwargs, refused):
    root = tmp_path / "msd"
    shutil.copytree(synthetic, root)
    _shift_affine(root / "labelsTr" / "synthetic_002.nii.gz", delta)
    if refused is None:
        assert len(load_decathlon_data(root, **kwargs)) == 3
        return
    pair = r"labelsTr/synthetic_002.nii.gz and its image .*imagesTr/synthetic_002.nii.gz"
    with pytest.raises(ValueError, match=rf"{pair} have affines that differ by up to {refused} \(mm"):
        load_decathlon_data(root, **kwargs)


def test_image_files_of_one_entry_on_different_grids_are_refused(synthetic, tmp_path):
    root = tmp_path / "msd"
    shutil.copytree(synthetic, root)
    shutil.copy(root / "imagesTr" / "synthetic_000.nii.gz", root / "imagesTr" / "synthetic_000_t2.nii.gz")
    _shift_affine(root / "imagesTr" / "synthetic_000_t2.nii.gz", _delta(2, 3, 4.0))
    t2 = "./imagesTr/synthetic_000_t2.nii.gz"
    _edit_json(root, lambda p: p["training"][0].update(image=[p["training"][0]["image"], t2]))
    refusal = r"synthetic_000_t2.nii.gz and image file .*synthetic_000.nii.gz have affines .* 4 "
    with pytest.raises(ValueError, match=refusal):
        load_decathlon_data(root, in_channels=2)
    with pytest.raises(ValueError, match="affine_tol must be >= 0"):
        load_decathlon_data(root, affine_tol=-1.0)


@pytest.mark.skipif(not (HIPPOCAMPUS / "dataset.json").is_file(), reason="shared MSD Task04 data not available")
def test_real_hippocampus_passes_the_header_checks():
    # All 200 image/label pairs of MSD Task04 share their affines exactly (max difference 0).
    train = load_decathlon_data(HIPPOCAMPUS, num_classes=3, in_channels=1, affine_tol=0.0)
    assert len(train) == 200


def _voxel(path: Path, index: tuple[int, int, int], value: float) -> None:
    """Set one voxel of a volume, stored as float32 (a label too, so that it can hold NaN and 0.5)."""
    data = np.asanyarray(nib.load(path).dataobj).astype(np.float32)
    data[index] = value
    _resave(path, data)


def _both(root: Path, case: str, image: np.ndarray, label: np.ndarray) -> None:
    _resave(root / "imagesTr" / f"synthetic_{case}.nii.gz", image)
    _resave(root / "labelsTr" / f"synthetic_{case}.nii.gz", label)


IMAGE_0 = "image file {root}/imagesTr/synthetic_000.nii.gz"
LABEL_1 = "label file {root}/labelsTr/synthetic_001.nii.gz"
JSON = "{root}/dataset.json: 'training' entry"
# (case, how to break the data set, load_decathlon_data kwargs, the message, with {root} the data set folder)
HOSTILE_CASES = [
    ("2D image and label", lambda r: _both(r, "000", np.zeros((8, 8), np.float32), np.zeros((8, 8), np.uint8)), {},
     IMAGE_0 + " has shape (8, 8) (2 axes), expected 3 axes (x, y, z) or 4 (x, y, z, channel)."),
    ("5D image", lambda r: _both(r, "000", np.zeros((8, 8, 8, 1, 1), np.float32), np.zeros((8, 8, 8), np.uint8)),
     {}, IMAGE_0 + " has shape (8, 8, 8, 1, 1) (5 axes), expected 3 axes (x, y, z) or 4 (x, y, z, channel)."),
    ("5D label", lambda r: _both(r, "001", np.zeros((8, 8, 8), np.float32), np.zeros((8, 8, 8, 1, 1), np.uint8)),
     {}, LABEL_1 + " has shape (8, 8, 8, 1, 1), expected the spatial shape (8, 8, 8) of its image "),
    ("label of another shape",
     lambda r: _both(r, "001", np.zeros((8, 8, 8), np.float32), np.zeros((8, 8, 9), np.uint8)), {},
     LABEL_1 + " has shape (8, 8, 9), expected the spatial shape (8, 8, 8) of its image "),
    ("NaN image voxel", lambda r: _voxel(r / "imagesTr" / "synthetic_000.nii.gz", (1, 2, 3), np.nan),
     {"read_data": True}, IMAGE_0 + " holds 1 NaN or infinite voxel(s) (the first at (1, 2, 3)), expected finite "
     "values."),
    ("infinite image voxel", lambda r: _voxel(r / "imagesTr" / "synthetic_000.nii.gz", (0, 0, 5), -np.inf),
     {"read_data": True}, IMAGE_0 + " holds 1 NaN or infinite voxel(s) (the first at (0, 0, 5))"),
    ("NaN label voxel", lambda r: _voxel(r / "labelsTr" / "synthetic_001.nii.gz", (4, 4, 4), np.nan),
     {"read_data": True, "num_classes": 3}, LABEL_1 + " holds 1 NaN or infinite voxel(s) (the first at (4, 4, 4))"),
    ("label value num_classes", lambda r: _voxel(r / "labelsTr" / "synthetic_001.nii.gz", (0, 0, 0), 3),
     {"read_data": True, "num_classes": 3},
     LABEL_1 + " holds values [0.0, 1.0, 2.0, 3.0], expected integers in [0, 3)."),
    ("negative label value", lambda r: _voxel(r / "labelsTr" / "synthetic_001.nii.gz", (0, 0, 0), -1),
     {"read_data": True, "num_classes": 3}, LABEL_1 + " holds values [-1.0, 0.0, 1.0, 2.0], expected integers"),
    ("fractional label value", lambda r: _voxel(r / "labelsTr" / "synthetic_001.nii.gz", (0, 0, 0), 0.5),
     {"read_data": True, "num_classes": 3}, LABEL_1 + " holds values [0.0, 0.5, 1.0, 2.0], expected integers"),
    ("dataset.json names a missing image",
     lambda r: _edit_json(r, lambda p: p["training"][0].update(image="./imagesTr/gone.nii.gz")), {},
     "image file {root}/imagesTr/gone.nii.gz (listed in {root}/dataset.json) does not exist."),
    ("dataset.json names a missing label",
     lambda r: _edit_json(r, lambda p: p["training"][1].update(label="./labelsTr/gone.nii.gz")), {},
     "label file {root}/labelsTr/gone.nii.gz (listed in {root}/dataset.json) does not exist."),
    ("entry a path", lambda r: _edit_json(r, lambda p: p["training"].__setitem__(1, "./imagesTr/synthetic_001.nii.gz")),
     {}, JSON + " 1 './imagesTr/synthetic_001.nii.gz' is not an object, expected {{'image': ..., 'label': ...}}."),
    ("entry without image", lambda r: _edit_json(r, lambda p: p["training"][2].pop("image")), {},
     JSON + " 2 {{'label': './labelsTr/synthetic_002.nii.gz'}} has no 'image' path (a string, or a list of strings"),
    ("image a number", lambda r: _edit_json(r, lambda p: p["training"][0].update(image=3)), {},
     JSON + " 0 {{'image': 3, 'label': './labelsTr/synthetic_000.nii.gz'}} has no 'image' path"),
    ("label a list", lambda r: _edit_json(r, lambda p: p["training"][0].update(label=["a.nii.gz"])), {},
     JSON + " 0 {{'image': './imagesTr/synthetic_000.nii.gz', 'label': ['a.nii.gz']}} has no 'label' path (a string)"),
    ("test list of paths and objects",
     lambda r: _edit_json(r, lambda p: p["test"].append({"image": "./imagesTs/synthetic_003.nii.gz"})),
     {"data_list_key": "test"}, "{root}/dataset.json: 'test' entry 1 {{'image': './imagesTs/synthetic_003.nii.gz'}} "
     "is not of the kind of entry 0 './imagesTs/synthetic_003.nii.gz': list paths only, or objects only."),
    ("dataset.json a list", lambda r: (r / "dataset.json").write_text("[]"), {},
     "{root}/dataset.json holds list, expected an MSD object with a 'training' list."),
    ("labels a list", lambda r: _edit_json(r, lambda p: p.update(labels=["background", "organ", "lesion"])),
     {"num_classes": 3}, "{root}/dataset.json lists labels ['background', 'organ', 'lesion'], expected num_classes=3 "
     "classes named by the keys ['0', '1', '2']."),
    ("labels of other classes", lambda r: _edit_json(r, lambda p: p.update(labels={"0": "bg", "1": "a", "5": "b"})),
     {"num_classes": 3}, "{root}/dataset.json lists labels {{'0': 'bg', '1': 'a', '5': 'b'}}, expected num_classes=3"),
]


@pytest.mark.parametrize("case,breaker,kwargs,message", HOSTILE_CASES, ids=[c[0] for c in HOSTILE_CASES])
def test_hostile_data_is_refused_naming_the_file_and_value(synthetic, tmp_path, case, breaker, kwargs, message):
    root = tmp_path / "msd"
    shutil.copytree(synthetic, root)
    breaker(root)
    with pytest.raises(ValueError) as info:
        load_decathlon_data(root, **kwargs)
    assert message.format(root=root.resolve()) in str(info.value), str(info.value)


def test_voxels_are_checked_only_when_read(synthetic, tmp_path):
    # Headers only by default: a NaN voxel needs read_data (the bundles' check_data, on by default) to be found.
    root = tmp_path / "msd"
    shutil.copytree(synthetic, root)
    _voxel(root / "imagesTr" / "synthetic_000.nii.gz", (1, 2, 3), np.nan)
    assert len(load_decathlon_data(root, num_classes=3, in_channels=1)) == 3
    with pytest.raises(ValueError, match=r"synthetic_000.nii.gz holds 1 NaN or infinite voxel"):
        load_decathlon_data(root, num_classes=3, in_channels=1, read_data=True)


@pytest.mark.parametrize(
    "shape, channels, refusal",
    [((8, 8, 8), 1, None), ((8, 8, 8, 2), 2, None), ((8, 8), 1, "has shape (8, 8) (2 axes), expected 3 axes"),
     ((8, 8, 8, 1, 2), 1, "has shape (8, 8, 8, 1, 2) (5 axes), expected 3 axes (x, y, z) or 4 (x, y, z, channel).")],
)
def test_a_plain_nifti_folder_refuses_volumes_of_another_rank(tmp_path, shape, channels, refusal):
    nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)), tmp_path / "case.nii.gz")
    if refusal is None:
        assert [Path(d["image"]).name for d in load_nifti_images(tmp_path, in_channels=channels)] == ["case.nii.gz"]
        return
    with pytest.raises(ValueError) as info:
        load_nifti_images(tmp_path)
    assert f"image file {(tmp_path / 'case.nii.gz').resolve()} {refusal}" in str(info.value), str(info.value)
