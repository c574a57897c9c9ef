from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from monai_srb.data import classification
from monai_srb.data.synthetic import write_synthetic_chestxray14


def _grey(path, size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((size, size), np.uint8)).save(path)


def _npz(path, labels: np.ndarray):
    n = len(labels)
    images = np.random.default_rng(0).integers(0, 255, (n, 8, 8), dtype=np.uint8)
    np.savez(path, train_images=images, train_labels=labels, val_images=images, val_labels=labels)
    return path


def test_format_task_and_class_names_of_each_layout(tmp_path):
    folder, one_hot = tmp_path / "cx", tmp_path / "derma.npz"
    folder.mkdir()
    _npz(one_hot, np.arange(6)[:, None] % 3)
    columns = _npz(tmp_path / "chest.npz", np.eye(4, dtype=np.uint8)[np.arange(6) % 4])
    assert (classification.data_format(folder), classification.data_format(one_hot)) == ("chestxray14", "medmnist")
    tasks = [classification.infer_task(p) for p in (None, folder, one_hot, columns)]
    assert tasks == ["multi-label", "multi-label", "multi-class", "multi-label"]
    names = classification.default_class_names
    assert names(None)[:2] == names(folder)[:2] == ["Atelectasis", "Cardiomegaly"]
    assert names(one_hot) == ["0", "1", "2"] and names(columns) == ["0", "1", "2", "3"]
    with pytest.raises(ValueError, match="multi-label task"):
        classification.classification_datalists(folder, task="multi-class")


def test_corrupt_npz_and_unknown_path(tmp_path):
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(ValueError, match="broken.npz cannot be read"):
        classification.classification_datalists(tmp_path / "broken.npz")
    with pytest.raises(ValueError, match="neither"):
        classification.classification_datalists(tmp_path / "absent")


def test_both_formats_give_lists_of_the_same_items(tmp_path):
    folder = write_synthetic_chestxray14(tmp_path / "cx", num_samples=10, image_size=32)
    lists = classification.classification_datalists(folder, val_fraction=0.2, check_images="decode")
    assert [len(lists[p]) for p in ("train", "val")] == [8, 2] and lists["val"][0]["label"].shape == (14,)
    npz_path = _npz(tmp_path / "m.npz", np.arange(6)[:, None] % 3)
    npz = classification.classification_datalists(npz_path, in_channels=3, max_samples=4)
    assert [len(npz[p]) for p in ("train", "val")] == [4, 4] and npz["train"][0]["image"].shape == (3, 8, 8)


def test_positive_weights_are_negatives_over_positives():
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]], np.float32)
    weights = classification.positive_weights([{"label": row} for row in labels])
    assert weights.dtype == torch.float32 and torch.equal(weights, torch.tensor([1.0, 3.0, 4.0]))
    assert torch.equal(classification.positive_weights(labels), weights)


def test_image_folder_datalist(tmp_path):
    with pytest.raises(ValueError, match="holds no"):
        classification.image_folder_datalist(tmp_path)
    _grey(tmp_path / "b.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.jpg")
    (tmp_path / "notes.txt").write_text("ignored")
    assert [d["name"] for d in classification.image_folder_datalist(tmp_path)] == ["a.jpg", "b.png"]
    (tmp_path / "c.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="c.png cannot be read"):
        classification.image_folder_datalist(tmp_path)
    assert len(classification.image_folder_datalist(tmp_path, check_images="none")) == 3


@pytest.mark.parametrize("layout", ["image_folder", "chestxray14_folder", "medmnist_npz"])
def test_inference_datalist_of_each_layout(tmp_path, layout):
    if layout == "medmnist_npz":
        rng = np.random.default_rng(0)
        sizes = (("train", 4), ("val", 3))
        arrays = {f"{s}_images": rng.integers(0, 255, (n, 8, 8), dtype=np.uint8) for s, n in sizes}
        arrays |= {f"{s}_labels": np.arange(n)[:, None] % 2 for s, n in sizes}
        np.savez(tmp_path / "x.npz", **arrays)
        items = classification.inference_datalist(tmp_path / "x.npz", max_samples=2)
        assert [item["name"] for item in items] == ["val_0", "val_1"] and items[0]["image"].shape == (1, 8, 8)
        assert all("label" not in item for item in items)
        return
    # A ChestX-ray14 folder is predicted from its images/, labelled or not: no label table needed.
    folder = tmp_path / "cx"
    for name in ("b.png", "a.png"):
        _grey(folder / "images" / name)
    source = folder if layout == "chestxray14_folder" else folder / "images"
    items = classification.inference_datalist(source, max_samples=1)
    assert [item["name"] for item in items] == ["a.png", "b.png"]  # a folder is predicted whole, sorted
    assert items[0]["image"] == str((folder / "images" / "a.png").resolve())
