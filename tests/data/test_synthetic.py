from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from monai_srb.data import chestxray14_datalists, load_skin_lesion_data, read_chestxray14_csv
from monai_srb.data.chestxray14 import CHESTXRAY14_CLASSES
from monai_srb.data.synthetic import (
    SYNTHETIC_LABELS,
    SYNTHETIC_MANIFEST,
    _cue_codes,
    make_synthetic_decathlon,
    make_synthetic_skin_lesions,
    write_synthetic_chestxray14,
)


def test_chestxray14_set_is_deterministic_and_readable(tmp_path):
    a = Path(write_synthetic_chestxray14(tmp_path / "a", num_samples=24, image_size=32, seed=1))
    b = Path(write_synthetic_chestxray14(tmp_path / "b", num_samples=30, image_size=32, seed=1))
    c = Path(write_synthetic_chestxray14(tmp_path / "c", num_samples=24, image_size=32, seed=2))
    header = (a / "Data_Entry_2017.csv").read_text().splitlines()[0]
    assert header.startswith("Image Index,Finding Labels,Follow-up #,Patient ID,")
    names, labels, patients = read_chestxray14_csv(a / "Data_Entry_2017.csv")
    assert len(names) == 24 and len(set(patients)) < 24  # follow-up images
    assert labels.sum() > 0
    for name in names:  # image i does not depend on num_samples
        assert (a / "images" / name).read_bytes() == (b / "images" / name).read_bytes()
    assert (a / "images" / names[0]).read_bytes() != (c / "images" / names[0]).read_bytes()
    lists = chestxray14_datalists(a, check_images="decode")
    assert len(lists["train"]) + len(lists["val"]) == 24


def test_chestxray14_findings_need_both_halves(tmp_path):
    # Every finding present has its cue pattern once left and once right of the midline (the boxes of
    # BBox_List_2017.csv), and the pixels in each box show that pattern.
    root = Path(write_synthetic_chestxray14(tmp_path, num_samples=12, image_size=64, seed=0))
    codes = _cue_codes(14)
    names, labels, _ = read_chestxray14_csv(root / "Data_Entry_2017.csv")
    with open(root / "BBox_List_2017.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    for name, label in zip(names, labels):
        boxes = [r for r in rows if r[0] == name]
        assert sorted({r[1] for r in boxes}) == sorted(CHESTXRAY14_CLASSES[c] for c in label.nonzero()[0])
        image = np.asarray(Image.open(root / "images" / name), np.float32)
        for finding in {r[1] for r in boxes}:
            found = [tuple(int(v) for v in r[2:6]) for r in boxes if r[1] == finding]
            assert sorted(x < 32 for x, _, _, _ in found) == [False, True]
            for x, y, w, h in found:
                patch = image[y : y + h, x : x + w].reshape(4, h // 4, 4, w // 4).mean((1, 3))
                # The drawn pattern correlates best with the finding's own code (robust to the background).
                scores = [np.corrcoef(patch.ravel(), code.ravel())[0, 1] for code in codes]
                assert int(np.argmax(scores)) == CHESTXRAY14_CLASSES.index(finding)


def test_chestxray14_rejects_bad_sizes(tmp_path):
    with pytest.raises(ValueError, match=r"image_size must be a multiple of 8 per spatial dim \(.*\), got 30\."):
        write_synthetic_chestxray14(tmp_path, num_samples=4, image_size=30)
    with pytest.raises(ValueError, match=r"image_size must be at least 32 per spatial dim \(.*\), got 24\."):
        write_synthetic_chestxray14(tmp_path, num_samples=4, image_size=24)
    with pytest.raises(ValueError, match="at least 2"):
        write_synthetic_chestxray14(tmp_path, num_samples=1)


def test_skin_lesions_are_deterministic_and_need_context(tmp_path):
    root = make_synthetic_skin_lesions(tmp_path / "a", num_samples=12, image_size=(48, 64), seed=5)
    datalist = load_skin_lesion_data(root)
    assert len(datalist) == 12
    large = 0
    for item in datalist:
        image, mask = Image.open(item["image"]), np.array(Image.open(item["label"]))
        assert image.mode == "RGB" and image.size == (64, 48) and mask.shape == (48, 64)
        assert set(np.unique(mask).tolist()) <= {0, 255} and mask.any()
        large += (mask > 0).mean() > 0.1
    # Most lesions are the large faint ones whose inside is told from skin only by a distant border.
    assert large >= 12 // 3

    # Image i depends only on (seed, i): rewriting, or writing more images, gives the same files.
    again = make_synthetic_skin_lesions(tmp_path / "b", num_samples=14, image_size=(48, 64), seed=5)
    for name in ("images/synthetic_0000.jpg", "masks/synthetic_0011_segmentation.png"):
        assert (Path(root) / name).read_bytes() == (Path(again) / name).read_bytes()
    other = make_synthetic_skin_lesions(tmp_path / "c", num_samples=1, image_size=(48, 64), seed=6)
    first = "images/synthetic_0000.jpg"
    assert (Path(root) / first).read_bytes() != (Path(other) / first).read_bytes()
    assert Image.open(Path(make_synthetic_skin_lesions(tmp_path / "d", 1, 32)) / first).size == (32, 32)


@pytest.mark.parametrize(
    "num_samples,image_size,message",
    [
        (0, 32, r"num_samples must be at least 1, got 0\."),
        (2, 8, r"image_size must be at least 16 per spatial dim, got 8\."),
        (2, (32, 12), r"image_size must be at least 16 per spatial dim, got \(32, 12\)\."),
        (2, (32, 32, 32), r"image_size must be one positive int or 2 positive ints .*\(3 entries\)"),
        (2, 32.0, r"image_size must be one positive int or 2 positive ints .*got 32\.0 \(float\)"),
    ],
)
def test_skin_lesions_reject_bad_arguments(tmp_path, num_samples, image_size, message):
    with pytest.raises(ValueError, match=message):
        make_synthetic_skin_lesions(tmp_path, num_samples=num_samples, image_size=image_size)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"num_train": 0}, r"need num_train >= 1 and num_test >= 0, got 0 and 1\."),
        ({"size": 8}, r"size must be at least 16 per spatial dim, got 8\."),
        ({"size": 16.5}, r"size must be a positive int, got 16\.5 \(float\)\."),
    ],
)
def test_decathlon_rejects_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_synthetic_decathlon(tmp_path, **{"num_train": 2, "num_test": 1, "size": 16, **kwargs})


def test_decathlon_set_is_msd_format_and_deterministic(tmp_path):
    synthetic = Path(make_synthetic_decathlon(tmp_path / "msd", num_train=3, num_test=1, size=24))
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


def test_decathlon_lesion_class_needs_context(tmp_path):
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


# (generator, arguments of a set, arguments of other sets written over it into the same folder)
GENERATORS = [
    (make_synthetic_skin_lesions, {"num_samples": 4, "image_size": (16, 24), "seed": 0},
     [{"num_samples": 1}, {"num_samples": 6}, {"image_size": (24, 16)}, {"seed": 1}]),
    (write_synthetic_chestxray14, {"num_samples": 4, "image_size": 32, "seed": 0},
     [{"num_samples": 2}, {"num_samples": 5}, {"image_size": 40}, {"seed": 1}, {"positive_rate": 0.5}]),
    (make_synthetic_decathlon, {"num_train": 3, "num_test": 1, "size": 16, "seed": 0},
     [{"num_train": 1}, {"num_test": 0}, {"num_train": 4, "num_test": 2}, {"size": 18}, {"seed": 1}]),
]
REWRITES = [(g, a, {**a, **b}) for g, a, bs in GENERATORS for b in bs]
FIRSTS = [(g, a) for g, a, _ in GENERATORS]


def _contents(root: Path) -> dict[str, bytes]:
    """Every file of a set by its path: bytes, decompressed for .gz (whose header holds the time it was written)."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
            for p in files}


def _write(generator, folder: Path, arguments: dict) -> Path:
    return Path(generator(folder, **arguments))


@pytest.mark.parametrize("with_manifest", [True, False], ids=["manifest", "set-of-an-older-version"])
@pytest.mark.parametrize(
    "generator,first,second", REWRITES, ids=[f"{g.__name__}-{b}" for g, _, b in REWRITES]
)
def test_a_set_with_other_arguments_replaces_the_one_in_the_folder(generator, first, second, with_manifest, tmp_path):
    root = _write(generator, tmp_path / "set", first)
    if not with_manifest:  # what the generators wrote before they kept a manifest
        (root / SYNTHETIC_MANIFEST).unlink()
    (root / "notes.txt").write_text("not the generator's")
    _write(generator, root, second)
    fresh = _contents(_write(generator, tmp_path / "fresh", second))
    # the same files as a set written with the new arguments into an empty folder: no image of the old set is left
    assert _contents(root) == {**fresh, "notes.txt": b"not the generator's"}
    assert json.loads((root / SYNTHETIC_MANIFEST).read_text())["params"]["seed"] == second["seed"]


@pytest.mark.parametrize("generator,arguments", FIRSTS, ids=[g.__name__ for g, _ in FIRSTS])
def test_the_same_arguments_again_write_nothing(generator, arguments, tmp_path):
    root = _write(generator, tmp_path, arguments)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    assert str(root) == generator(root, **arguments)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before


def _delete_first_image(root: Path) -> None:
    files = json.loads((root / SYNTHETIC_MANIFEST).read_text())["files"]
    (root / sorted(f for f in files if "/" in f)[0]).unlink()


def _truncate_last_file(root: Path) -> None:
    files = json.loads((root / SYNTHETIC_MANIFEST).read_text())["files"]
    (root / sorted(files)[-1]).write_bytes(b"")


def _garble_manifest(root: Path) -> None:
    (root / SYNTHETIC_MANIFEST).write_text("{not json")


def _drop_manifest(root: Path) -> None:
    (root / SYNTHETIC_MANIFEST).unlink()


def _leave_temporary_file(root: Path) -> None:
    # a write killed between writing a temporary file and renaming it, with the manifest of the set it replaced
    image = sorted(p for p in root.rglob("*") if p.parent != root)[0]
    (image.parent / f".12345.{image.name}").write_bytes(b"half")
    _drop_manifest(root)


DAMAGES = [_delete_first_image, _truncate_last_file, _garble_manifest, _drop_manifest, _leave_temporary_file]


@pytest.mark.parametrize("damage", DAMAGES, ids=[d.__name__.strip("_") for d in DAMAGES])
@pytest.mark.parametrize("generator,arguments", FIRSTS, ids=[g.__name__ for g, _ in FIRSTS])
def test_an_incomplete_set_is_rebuilt(generator, arguments, damage, tmp_path):
    root = _write(generator, tmp_path / "set", arguments)
    damage(root)
    _write(generator, root, arguments)
    assert _contents(root) == _contents(_write(generator, tmp_path / "fresh", arguments))
