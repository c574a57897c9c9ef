from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monai_srb.data.medmnist import medmnist_class_names, medmnist_datalists, medmnist_task

DERMAMNIST = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "dermamnist.npz"


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _medmnist_arrays(n: int = 6, classes: int = 3, rgb: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shape = (n, 8, 8, 3) if rgb else (n, 8, 8)
    out = {}
    for split in ("train", "val", "test"):
        out[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        out[f"{split}_labels"] = (np.arange(n) % classes).astype(np.uint8)[:, None]
    return out


def test_medmnist_lists_one_hot_and_grey(tmp_path):
    path = _npz(tmp_path / "m.npz", **_medmnist_arrays())
    assert medmnist_task(path) == "multi-class" and medmnist_class_names(path) == ["0", "1", "2"]
    lists = medmnist_datalists(path)
    assert [len(lists[s]) for s in ("train", "val", "test")] == [6, 6, 6]
    item = lists["train"][4]
    assert item["image"].shape == (1, 8, 8) and item["image"].dtype == np.uint8
    assert item["label"].tolist() == [0.0, 1.0, 0.0] and item["name"] == "train_4"
    rgb = np.load(path)["train_images"][4].astype(np.float32)
    assert np.abs(item["image"][0].astype(np.float32) - rgb @ np.array([0.299, 0.587, 0.114])).max() <= 0.5
    assert medmnist_datalists(path, in_channels=3)["val"][0]["image"].shape == (3, 8, 8)
    assert len(medmnist_datalists(path, max_samples=2)["test"]) == 2


def test_medmnist_multi_label_columns(tmp_path):
    arrays = _medmnist_arrays(rgb=False)
    for split in ("train", "val", "test"):
        arrays[f"{split}_labels"] = np.eye(4, dtype=np.uint8)[np.arange(6) % 4] | np.eye(4, dtype=np.uint8)[[0] * 6]
    path = _npz(tmp_path / "chest.npz", **arrays)
    assert medmnist_task(path) == "multi-label"
    lists = medmnist_datalists(path)
    assert lists["train"][1]["label"].tolist() == [1.0, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="not one-hot"):
        medmnist_datalists(path, task="multi-class")


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda a: a.pop("val_labels"), r"lacks the keys \['val_labels'\]"),
        (lambda a: a.update(train_labels=a["train_labels"][:4]), "holds 6 images but train_labels 4"),
        (lambda a: a.update(train_images=np.zeros((6, 4, 4, 4, 2), np.uint8)), "3D MedMNIST volumes"),
    ],
)
def test_bad_medmnist_raises_naming_the_file(tmp_path, mutate, match):
    arrays = _medmnist_arrays()
    mutate(arrays)
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=match) as info:
        medmnist_datalists(path)
    assert str(path) in str(info.value)


@pytest.mark.skipif(not DERMAMNIST.exists(), reason="shared dermamnist.npz not available")
def test_dermamnist_official_split():
    lists = medmnist_datalists(DERMAMNIST)
    assert [len(lists[s]) for s in ("train", "val", "test")] == [7007, 1003, 2005]
    labels = np.stack([d["label"] for d in lists["train"]])
    assert labels.shape == (7007, 7) and (labels.sum(1) == 1).all()
    assert lists["train"][0]["image"].shape == (1, 28, 28)


def _float_images(kind: str, source: np.ndarray) -> np.ndarray:
    return {
        "float32 [0, 1]": (source / 255.0).astype(np.float32),
        "float64 [0, 255]": source.astype(np.float64),
        "float32 [0, 1] rounding error": np.clip(source / 255.0 + 1e-4, 0, None).astype(np.float32),
        "int64 [0, 255]": source.astype(np.int64),
    }[kind]


@pytest.mark.parametrize(
    "kind", ["float32 [0, 1]", "float64 [0, 255]", "float32 [0, 1] rounding error", "int64 [0, 255]"]
)
@pytest.mark.parametrize("rgb", [False, True])
def test_medmnist_float_and_wide_integer_images_read_as_uint8(tmp_path, kind, rgb):
    arrays = _medmnist_arrays(rgb=rgb)
    arrays["train_images"][0] = 255  # every kind reaches its range's top
    uint8_path = _npz(tmp_path / "uint8.npz", **arrays)
    converted = {k: _float_images(kind, v) if k.endswith("_images") else v for k, v in arrays.items()}
    path = _npz(tmp_path / "converted.npz", **converted)
    for in_channels in (1, 3):
        expected, got = medmnist_datalists(uint8_path, in_channels=in_channels), medmnist_datalists(
            path, in_channels=in_channels
        )
        for split in ("train", "val", "test"):
            for a, b in zip(expected[split], got[split]):
                assert b["image"].dtype == np.uint8 and np.array_equal(a["image"], b["image"]), (split, b["name"])


@pytest.mark.parametrize(
    "images, match",
    [
        (lambda x: (x / 127.5 - 1.0).astype(np.float32), r"train_images \(float32\) holds values in \[-1, 1\]"),
        (lambda x: x.astype(np.float32) * 1.5, r"train_images \(float32\) holds values in \[0, 382.5\]"),
        (lambda x: (x / 255.0 * 1.5).astype(np.float32), r"train_images \(float32\) holds values in \[0, 1.5\]"),
        (lambda x: np.where(x > 250, np.nan, x / 255.0), r"train_images holds NaN or infinite"),
        (
            lambda x: x.astype(np.uint16) * 16,
            r"train_images \(uint16\) holds values in \[0, 4080\], expected \[0, 255\]",
        ),
        (lambda x: x > 127, r"train_images has dtype bool"),
        (lambda x: x.astype(np.complex64), r"train_images has dtype complex64"),
    ],
    ids=["float [-1, 1]", "float [0, 382.5]", "float [0, 1.5]", "float NaN", "uint16 12-bit", "bool", "complex"],
)
def test_medmnist_images_of_another_range_or_dtype_are_refused(tmp_path, images, match):
    arrays = _medmnist_arrays()
    arrays["train_images"][0] = 255
    arrays["train_images"] = images(arrays["train_images"])
    path = _npz(tmp_path / "bad_images.npz", **arrays)
    with pytest.raises(ValueError, match=match) as info:
        medmnist_datalists(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "labels, match",
    [
        (np.array([[0], [1], [-1], [2], [0], [1]], np.int64), r"train_labels\[2\] = \[-1\]"),
        (np.array([[0], [1], [2], [1.5], [0], [1]], np.float32), r"train_labels\[3\] = \[1.5\]"),
        (np.array([[0, 1], [1, 0], [0, -1], [1, 1], [0, 0], [1, 0]], np.int8), r"train_labels\[2\] = \[0, -1\]"),
    ],
    ids=["negative class index", "fractional class index", "negative multi-label column"],
)
def test_negative_or_fractional_medmnist_labels_are_refused(tmp_path, labels, match):
    # A class index of -1 would silently become the last class of a one-hot row, and 1.5 class 1.
    arrays = _medmnist_arrays()
    arrays["train_labels"] = labels
    path = _npz(tmp_path / "bad_labels.npz", **arrays)
    for call in (medmnist_task, medmnist_datalists):
        with pytest.raises(ValueError, match=match) as info:
            call(path)
        assert str(path) in str(info.value)
