from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monai_srb.data import chest_xray as cx

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
REAL_CSV = SHARED / "chestxray14" / "Data_Entry_2017_v2020.csv.gz"
DERMAMNIST = SHARED / "dermamnist.npz"

HEADER = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID"]


def _chestxray_folder(
    root: Path, rows: list[tuple[str, str, str]], header: list[str] = HEADER, gz: bool = False
) -> Path:
    """A ChestX-ray14 folder with ``rows`` (image, findings, patient) and a 16x16 grey PNG per row."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    name = "Data_Entry_2017.csv.gz" if gz else "Data_Entry_2017.csv"
    with (gzip.open if gz else open)(root / name, "wt", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for image, findings, patient in rows:
            writer.writerow([image, findings, 0, patient][: len(header)])
            Image.fromarray(np.full((16, 16), 100, np.uint8)).save(root / "images" / image)
    return root


def _rows(n: int) -> list[tuple[str, str, str]]:
    findings = ["No Finding", "Cardiomegaly", "Effusion|Mass", "Hernia"]
    return [(f"{i:08d}_000.png", findings[i % 4], str(i // 2)) for i in range(n)]


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


@pytest.mark.parametrize("gz", [False, True])
def test_read_csv_labels_in_official_order(tmp_path, gz):
    root = _chestxray_folder(tmp_path, _rows(4), gz=gz)
    names, labels, patients = cx.read_chestxray14_csv(cx.find_chestxray14_csv(root))
    assert names == [r[0] for r in _rows(4)] and patients == ["0", "0", "1", "1"]
    assert labels.shape == (4, 14) and labels.dtype == np.float32
    assert labels[0].sum() == 0  # No Finding
    assert labels[1].nonzero()[0].tolist() == [1]  # Cardiomegaly
    assert labels[2].nonzero()[0].tolist() == [2, 4]  # Effusion|Mass
    assert labels[3].nonzero()[0].tolist() == [13]  # Hernia


def test_random_split_counts_and_determinism():
    train, val = cx.random_split(112_120, 0.2, seed=0)
    assert (len(train), len(val)) == (89_696, 22_424)
    assert not set(train) & set(val)
    again = cx.random_split(112_120, 0.2, seed=0)
    assert np.array_equal(train, again[0]) and not np.array_equal(val, cx.random_split(112_120, 0.2, seed=1)[1])


def test_patient_split_is_disjoint():
    patients = [str(p) for p in np.random.default_rng(0).integers(0, 50, 400)]
    train, val = cx.patient_split(patients, 0.2, seed=3)
    assert len(train) + len(val) == 400 and len(val) >= 80
    assert not {patients[i] for i in train} & {patients[i] for i in val}


@pytest.mark.skipif(not REAL_CSV.exists(), reason="shared ChestX-ray14 label table not available")
def test_real_chestxray14_split_counts():
    names, labels, patients = cx.read_chestxray14_csv(REAL_CSV)
    assert len(names) == 112_120 and len(set(patients)) == 30_805
    train, val = cx.random_split(len(names), 0.2, seed=0)
    assert (len(train), len(val)) == (89_696, 22_424)
    p_train, p_val = cx.patient_split(patients, 0.2, seed=0)
    assert len(p_train) + len(p_val) == 112_120 and len(p_val) >= 22_424
    assert not {patients[i] for i in p_train} & {patients[i] for i in p_val}
    row = {n: labels[i] for i, n in enumerate(names) if n in ("00000001_000.png", "00027426_000.png")}
    assert row["00000001_000.png"].nonzero()[0].tolist() == [cx.CHESTXRAY14_CLASSES.index("Cardiomegaly")]
    assert row["00027426_000.png"].sum() == 0  # No Finding


@pytest.mark.skipif(not REAL_CSV.exists(), reason="shared ChestX-ray14 data not available")
def test_real_chestxray14_uses_only_present_images():
    root = REAL_CSV.parent
    with pytest.raises(ValueError, match="112118 of the 112120 images"):
        cx.chestxray14_datalists(root)
    # With two images on disk one part may come out empty; either way only present images are listed.
    try:
        with pytest.warns(UserWarning, match="dropping 112118"):
            lists = cx.chestxray14_datalists(root, require_images=False)
    except ValueError as e:
        assert "no val image" in str(e) or "no train image" in str(e)
    else:
        listed = sorted(d["name"] for part in lists.values() for d in part)
        assert listed == ["00000001_000.png", "00027426_000.png"]


def test_datalists_split_and_items(tmp_path):
    root = _chestxray_folder(tmp_path, _rows(20))
    lists = cx.chestxray14_datalists(root, val_fraction=0.25, seed=0)
    assert (len(lists["train"]), len(lists["val"])) == (15, 5)
    item = lists["train"][0]
    assert Path(item["image"]).is_file() and item["label"].shape == (14,) and item["name"].endswith(".png")
    by_patient = cx.chestxray14_datalists(root, val_fraction=0.25, patient_wise=True)
    assert not {d["patient"] for d in by_patient["train"]} & {d["patient"] for d in by_patient["val"]}
    assert [len(v) for v in cx.chestxray14_datalists(root, max_samples=3).values()] == [3, 3]


def test_missing_images_dropped_only_when_allowed(tmp_path):
    root = _chestxray_folder(tmp_path, _rows(20))
    (root / "images" / "00000003_000.png").unlink()
    with pytest.raises(ValueError, match="00000003_000.png"):
        cx.chestxray14_datalists(root)
    with pytest.warns(UserWarning, match="dropping 1 of the 20"):
        lists = cx.chestxray14_datalists(root, require_images=False)
    assert sum(len(v) for v in lists.values()) == 19


def _bad_chestxray(kind: str, root: Path) -> Path:
    if kind == "no_csv":
        (root / "images").mkdir(parents=True)
        return root
    if kind == "missing_columns":
        return _chestxray_folder(root, _rows(4), header=["Image Index", "Follow-up #"])
    folder = _chestxray_folder(root, _rows(8))
    if kind == "unknown_finding":
        with open(folder / "Data_Entry_2017.csv", "a") as f:
            f.write("x.png,Fracture,0,9\n")
    elif kind == "empty_images":
        for p in (folder / "images").iterdir():
            p.unlink()
    elif kind == "no_images_folder":
        for p in (folder / "images").iterdir():
            p.unlink()
        (folder / "images").rmdir()
    elif kind == "unreadable_image":
        (folder / "images" / "00000002_000.png").write_bytes(b"not an image")
    elif kind == "empty_csv":
        (folder / "Data_Entry_2017.csv").write_text(",".join(HEADER) + "\n")
    return folder


@pytest.mark.parametrize(
    "kind, match",
    [
        ("no_csv", r"no Data_Entry_2017\*\.csv"),
        ("missing_columns", r"lacks the columns \['Finding Labels', 'Patient ID'\]"),
        ("unknown_finding", r"line 10: finding 'Fracture'"),
        ("empty_images", r"images is empty"),
        ("no_images_folder", r"has no images/ folder"),
        ("unreadable_image", r"00000002_000.png cannot be read"),
        ("empty_csv", r"Data_Entry_2017.csv has no rows"),
    ],
)
def test_bad_chestxray14_raises_naming_the_file(tmp_path, kind, match):
    root = _bad_chestxray(kind, tmp_path / kind)
    with pytest.raises(ValueError, match=match):
        cx.classification_datalists(root)


def test_truncated_image_caught_by_decode_check(tmp_path):
    root = _chestxray_folder(tmp_path, _rows(8))
    path = root / "images" / "00000001_000.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:2000])
    cx.chestxray14_datalists(root)  # the header is intact
    with pytest.raises(ValueError, match="00000001_000.png cannot be read"):
        cx.chestxray14_datalists(root, check_images="decode")


def test_medmnist_lists_one_hot_and_grey(tmp_path):
    path = _npz(tmp_path / "m.npz", **_medmnist_arrays())
    assert cx.infer_task(path) == "multi-class" and cx.default_class_names(path) == ["0", "1", "2"]
    lists = cx.medmnist_datalists(path)
    assert [len(lists[s]) for s in ("train", "val", "test")] == [6, 6, 6]
    item = lists["train"][4]
    assert item["image"].shape == (1, 8, 8) and item["image"].dtype == np.uint8
    assert item["label"].tolist() == [0.0, 1.0, 0.0] and item["name"] == "train_4"
    rgb = np.load(path)["train_images"][4].astype(np.float32)
    assert np.abs(item["image"][0].astype(np.float32) - rgb @ np.array([0.299, 0.587, 0.114])).max() <= 0.5
    assert cx.medmnist_datalists(path, in_channels=3)["val"][0]["image"].shape == (3, 8, 8)
    assert len(cx.medmnist_datalists(path, max_samples=2)["test"]) == 2


def test_medmnist_multi_label_columns(tmp_path):
    arrays = _medmnist_arrays(rgb=False)
    for split in ("train", "val", "test"):
        arrays[f"{split}_labels"] = np.eye(4, dtype=np.uint8)[np.arange(6) % 4] | np.eye(4, dtype=np.uint8)[[0] * 6]
    path = _npz(tmp_path / "chest.npz", **arrays)
    assert cx.infer_task(path) == "multi-label"
    lists = cx.medmnist_datalists(path)
    assert lists["train"][1]["label"].tolist() == [1.0, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="not one-hot"):
        cx.medmnist_datalists(path, task="multi-class")


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
        cx.classification_datalists(path)
    assert str(path) in str(info.value)


def test_corrupt_npz_and_unknown_path(tmp_path):
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(ValueError, match="broken.npz cannot be read"):
        cx.classification_datalists(tmp_path / "broken.npz")
    with pytest.raises(ValueError, match="neither"):
        cx.classification_datalists(tmp_path / "absent")


@pytest.mark.skipif(not DERMAMNIST.exists(), reason="shared dermamnist.npz not available")
def test_dermamnist_official_split():
    lists = cx.classification_datalists(DERMAMNIST)
    assert [len(lists[s]) for s in ("train", "val", "test")] == [7007, 1003, 2005]
    labels = np.stack([d["label"] for d in lists["train"]])
    assert labels.shape == (7007, 7) and (labels.sum(1) == 1).all()
    assert lists["train"][0]["image"].shape == (1, 28, 28)


def test_positive_weights_from_label_frequencies():
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]], np.float32)
    assert np.allclose(cx.label_frequencies(labels), [0.5, 0.25, 0.0])
    weights = cx.positive_weights([{"label": row} for row in labels])
    assert weights.dtype == torch.float32 and torch.allclose(weights, torch.tensor([1.0, 3.0, 4.0]))


def test_image_folder_datalist(tmp_path):
    with pytest.raises(ValueError, match="holds no"):
        cx.image_folder_datalist(tmp_path)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "b.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.jpg")
    (tmp_path / "notes.txt").write_text("ignored")
    assert [d["name"] for d in cx.image_folder_datalist(tmp_path)] == ["a.jpg", "b.png"]
    (tmp_path / "c.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="c.png cannot be read"):
        cx.image_folder_datalist(tmp_path)


def test_synthetic_set_is_deterministic_and_readable(tmp_path):
    a = Path(cx.write_synthetic_chestxray14(tmp_path / "a", num_samples=24, image_size=32, seed=1))
    b = Path(cx.write_synthetic_chestxray14(tmp_path / "b", num_samples=30, image_size=32, seed=1))
    c = Path(cx.write_synthetic_chestxray14(tmp_path / "c", num_samples=24, image_size=32, seed=2))
    header = (a / "Data_Entry_2017.csv").read_text().splitlines()[0]
    assert header.startswith("Image Index,Finding Labels,Follow-up #,Patient ID,")
    names, labels, patients = cx.read_chestxray14_csv(a / "Data_Entry_2017.csv")
    assert len(names) == 24 and len(set(patients)) < 24  # follow-up images
    assert labels.sum() > 0
    for name in names:  # image i does not depend on num_samples
        assert (a / "images" / name).read_bytes() == (b / "images" / name).read_bytes()
    assert (a / "images" / names[0]).read_bytes() != (c / "images" / names[0]).read_bytes()
    lists = cx.classification_datalists(a, check_images="decode")
    assert len(lists["train"]) + len(lists["val"]) == 24


def test_synthetic_findings_need_both_halves(tmp_path):
    # Every finding present has its cue pattern once left and once right of the midline (the boxes of
    # BBox_List_2017.csv), and the pixels in each box show that pattern.
    root = Path(cx.write_synthetic_chestxray14(tmp_path, num_samples=12, image_size=64, seed=0))
    codes = cx._cue_codes(14)
    names, labels, _ = cx.read_chestxray14_csv(root / "Data_Entry_2017.csv")
    with open(root / "BBox_List_2017.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    for name, label in zip(names, labels):
        boxes = [r for r in rows if r[0] == name]
        assert sorted({r[1] for r in boxes}) == sorted(cx.CHESTXRAY14_CLASSES[c] for c in label.nonzero()[0])
        image = np.asarray(Image.open(root / "images" / name), np.float32)
        for finding in {r[1] for r in boxes}:
            found = [tuple(int(v) for v in r[2:6]) for r in boxes if r[1] == finding]
            assert sorted(x < 32 for x, _, _, _ in found) == [False, True]
            for x, y, w, h in found:
                patch = image[y : y + h, x : x + w].reshape(4, h // 4, 4, w // 4).mean((1, 3))
                # The drawn pattern correlates best with the finding's own code (robust to the background).
                scores = [np.corrcoef(patch.ravel(), code.ravel())[0, 1] for code in codes]
                assert int(np.argmax(scores)) == cx.CHESTXRAY14_CLASSES.index(finding)


def test_synthetic_rejects_bad_sizes(tmp_path):
    with pytest.raises(ValueError, match="multiple of 8"):
        cx.write_synthetic_chestxray14(tmp_path, num_samples=4, image_size=30)
    with pytest.raises(ValueError, match="at least 2"):
        cx.write_synthetic_chestxray14(tmp_path, num_samples=1)


@pytest.mark.parametrize("gz", [False, True])
def test_csv_with_utf8_bom_is_read(tmp_path, gz):
    # Spreadsheet programs save "CSV UTF-8" with a byte order mark before the first column's name.
    root = _chestxray_folder(tmp_path, _rows(4), gz=gz)
    csv_path = cx.find_chestxray14_csv(root)
    opener = gzip.open if gz else open
    with opener(csv_path, "rb") as f:
        text = f.read()
    with opener(csv_path, "wb") as f:
        f.write(b"\xef\xbb\xbf" + text)
    names, labels, patients = cx.read_chestxray14_csv(csv_path)
    assert names == [r[0] for r in _rows(4)] and patients == ["0", "0", "1", "1"]
    assert labels[2].nonzero()[0].tolist() == [2, 4]


@pytest.mark.parametrize(
    "duplicated, match",
    [
        ([3], r"1 image\(s\) on more than one row \('00000003_000.png' on lines \[5, 10\]\)"),
        ([0, 3, 3], r"2 image\(s\).*'00000000_000.png' on lines \[2, 10\]; '00000003_000.png' on lines \[5, 11, 12\]"),
    ],
)
def test_duplicate_csv_rows_are_refused_naming_image_and_lines(tmp_path, duplicated, match):
    # Without the check, a repeated row can put one image in both training and validation.
    rows = _rows(8)
    root = _chestxray_folder(tmp_path, rows + [(rows[i][0], "Hernia", rows[i][2]) for i in duplicated])
    with pytest.raises(ValueError, match=match):
        cx.read_chestxray14_csv(root / "Data_Entry_2017.csv")
    for patient_wise in (False, True):
        with pytest.raises(ValueError, match="keep one row per image"):
            cx.chestxray14_datalists(root, val_fraction=0.5, patient_wise=patient_wise)


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
        expected, got = cx.medmnist_datalists(uint8_path, in_channels=in_channels), cx.medmnist_datalists(
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
        (lambda x: x.astype(np.uint16) * 16, r"train_images \(uint16\) holds values in \[0, 4080\], expected \[0, 255\]"),
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
        cx.classification_datalists(path)
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
    for call in (cx.infer_task, cx.classification_datalists):
        with pytest.raises(ValueError, match=match) as info:
            call(path)
        assert str(path) in str(info.value)


@pytest.mark.parametrize("layout", ["image_folder", "chestxray14_folder", "medmnist_npz"])
def test_inference_datalist_of_each_layout(tmp_path, layout):
    if layout == "medmnist_npz":
        rng = np.random.default_rng(0)
        sizes = (("train", 4), ("val", 3))
        arrays = {f"{s}_images": rng.integers(0, 255, (n, 8, 8), dtype=np.uint8) for s, n in sizes}
        arrays |= {f"{s}_labels": np.arange(n)[:, None] % 2 for s, n in sizes}
        np.savez(tmp_path / "x.npz", **arrays)
        items = cx.inference_datalist(tmp_path / "x.npz", max_samples=2)
        assert [item["name"] for item in items] == ["val_0", "val_1"] and items[0]["image"].shape == (1, 8, 8)
        assert all("label" not in item for item in items)
        return
    folder = _chestxray_folder(tmp_path / "cx", [("b.png", "Mass", "1"), ("a.png", "No Finding", "2")])
    items = cx.inference_datalist(folder if layout == "chestxray14_folder" else folder / "images", max_samples=1)
    assert [item["name"] for item in items] == ["a.png", "b.png"]  # a folder is predicted whole, sorted
    assert items[0]["image"] == str((folder / "images" / "a.png").resolve())
