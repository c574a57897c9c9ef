"""
Chest X-ray classification data: checked data lists for the NIH ChestX-ray14 layout (multi-label) and for
MedMNIST ``.npz`` files (multi-class, or multi-label for ChestMNIST), the paper's random 4:1 split, the
positive weights of the weighted BCE, and a synthetic ChestX-ray14-format data set whose labels can only
be read by relating the two halves of an image.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

__all__ = [
    "CHECK_IMAGES",
    "CHESTXRAY14_CLASSES",
    "CHESTXRAY14_COLUMNS",
    "IMAGE_SUFFIXES",
    "MEDMNIST_KEYS",
    "NO_FINDING",
    "TASKS",
    "chestxray14_datalists",
    "classification_datalists",
    "data_format",
    "default_class_names",
    "find_chestxray14_csv",
    "image_folder_datalist",
    "infer_task",
    "inference_datalist",
    "label_frequencies",
    "medmnist_datalists",
    "patient_split",
    "positive_weights",
    "random_split",
    "read_chestxray14_csv",
    "write_synthetic_chestxray14",
]

# The 14 pathologies in the order of the official release (Wang et al., CVPR 2017), i.e. label index order.
CHESTXRAY14_CLASSES = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
NO_FINDING = "No Finding"
# The columns the data lists need; the official CSV has more (age, gender, view, original size, spacing).
CHESTXRAY14_COLUMNS = ("Image Index", "Finding Labels", "Patient ID")
# The official header: its last two names hold a comma inside brackets, so csv splits them into four fields
# and a data row (11 fields) lines up with the split header.
_CHESTXRAY14_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)
MEDMNIST_KEYS = ("train_images", "train_labels", "val_images", "val_labels")
TASKS = ("multi-label", "multi-class")
CHECK_IMAGES = ("none", "header", "decode")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


# ---------------------------------------------------------------------------------------------------------
# Format detection
# ---------------------------------------------------------------------------------------------------------


def find_chestxray14_csv(dataset_dir: str | os.PathLike) -> Path:
    """
    The label table of a ChestX-ray14 folder: ``Data_Entry_2017*.csv`` or ``Data_Entry_2017*.csv.gz``.

    With several (the 2017 table and its 2020 relabelling, say) the last by name is used, which is the most
    recent release, and a warning says so.

    Args:
        dataset_dir: the data set folder (holding the CSV and ``images/``).

    Raises:
        ValueError: when ``dataset_dir`` is not a folder or holds no such CSV.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise ValueError(f"ChestX-ray14 dataset_dir {root} is not a folder.")
    found = sorted(p for p in root.glob("Data_Entry_2017*") if p.name.endswith((".csv", ".csv.gz")))
    if not found:
        raise ValueError(
            f"ChestX-ray14 folder {root} holds no Data_Entry_2017*.csv or Data_Entry_2017*.csv.gz label table "
            f"(found {sorted(p.name for p in root.iterdir())[:10]})."
        )
    if len(found) > 1:
        names = [p.name for p in found]
        warnings.warn(f"{root} holds several label tables {names}; using {found[-1].name}.", stacklevel=2)
    return found[-1]


def data_format(path: str | os.PathLike) -> str:
    """
    ``"medmnist"`` for a ``.npz`` file, ``"chestxray14"`` for a folder (checked when its data list is built).

    Args:
        path: a MedMNIST ``.npz`` file or a ChestX-ray14 folder.

    Raises:
        ValueError: when ``path`` does not exist or is a file other than ``.npz``.
    """
    p = Path(path)
    if p.is_file() and p.suffix == ".npz":
        return "medmnist"
    if p.is_dir():
        return "chestxray14"
    raise ValueError(f"dataset path {p} must be a ChestX-ray14 folder or a MedMNIST .npz file; it is neither.")


def _open_npz(path: Path) -> Any:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"MedMNIST file {path} cannot be read as .npz: {e}") from e


def _npz_labels(npz: Any, path: Path) -> dict[str, np.ndarray]:
    missing = [k for k in MEDMNIST_KEYS if k not in npz.files]
    if missing:
        raise ValueError(f"MedMNIST file {path} lacks the keys {missing} (has {sorted(npz.files)}).")
    splits = [s for s in ("train", "val", "test") if f"{s}_labels" in npz.files]
    labels = {}
    for s in splits:
        key = f"{s}_labels"
        y = np.asarray(npz[key])
        if y.dtype != np.bool_ and not np.issubdtype(y.dtype, np.integer) and not np.issubdtype(y.dtype, np.floating):
            raise ValueError(f"MedMNIST file {path}: {key} has dtype {y.dtype}, expected integer (or bool) labels.")
        y = y.reshape(len(y), -1)
        # Checked here, before any use: a class index of -1 would index the last class of a one-hot row, and
        # 1.5 would be truncated to 1, both silently.
        bad = ~np.isfinite(y) | (y != np.round(y)) | (y < 0) if y.dtype != np.bool_ else np.zeros(y.shape, bool)
        if bad.any():
            i = int(np.flatnonzero(bad.any(axis=1))[0])
            raise ValueError(
                f"MedMNIST file {path}: {key}[{i}] = {y[i].tolist()}; labels must be class indices >= 0 or 0/1 "
                f"columns ({int(bad.any(axis=1).sum())} such row(s) in {key})."
            )
        labels[s] = y
    return labels


def infer_task(path: str | os.PathLike | None) -> str:
    """
    The task a data set implies: ``"multi-label"`` for ChestX-ray14; for a MedMNIST file, ``"multi-class"``
    when its labels are one class index per image (``(N, 1)``) and ``"multi-label"`` when they are one 0/1
    column per class (``(N, K)``, e.g. ChestMNIST).

    Args:
        path: a MedMNIST ``.npz`` file or a ChestX-ray14 folder; ``None``: the synthetic ChestX-ray14 set
            (:func:`write_synthetic_chestxray14`), answered without writing it.

    Raises:
        ValueError: as :func:`data_format`, or for a ``.npz`` without the MedMNIST keys.
    """
    if path is None or data_format(path) == "chestxray14":
        return "multi-label"
    with _open_npz(Path(path)) as npz:
        labels = _npz_labels(npz, Path(path))
    return "multi-class" if labels["train"].shape[1] == 1 else "multi-label"


def default_class_names(path: str | os.PathLike | None, task: str | None = None) -> list[str]:
    """
    Class names of a data set: the 14 ChestX-ray14 pathologies, or ``"0"``, ``"1"``, ... for a MedMNIST file
    (its ``.npz`` carries no names; give them in the bundle's ``class_names``).

    Args:
        path: a MedMNIST ``.npz`` file or a ChestX-ray14 folder; ``None``: the synthetic ChestX-ray14 set.
        task: ``"multi-label"`` or ``"multi-class"``; ``None``: :func:`infer_task`.
    """
    if path is None or data_format(path) == "chestxray14":
        return list(CHESTXRAY14_CLASSES)
    with _open_npz(Path(path)) as npz:
        labels = _npz_labels(npz, Path(path))
    return [str(i) for i in range(_num_classes(labels, task or infer_task(path)))]


# ---------------------------------------------------------------------------------------------------------
# ChestX-ray14
# ---------------------------------------------------------------------------------------------------------


def read_chestxray14_csv(
    csv_path: str | os.PathLike, class_names: Sequence[str] = CHESTXRAY14_CLASSES
) -> tuple[list[str], np.ndarray, list[str]]:
    """
    Read a ChestX-ray14 label table.

    Args:
        csv_path: ``Data_Entry_2017*.csv`` or ``.csv.gz``.
        class_names: the label order; a row's pipe-separated ``Finding Labels`` become a 0/1 row in this order,
            ``"No Finding"`` an all-zero row.

    The file is read as UTF-8, with or without a byte order mark (spreadsheet programs write one).

    Returns:
        image file names, labels ``(N, len(class_names))`` float32, patient ids (strings), in file order.

    Raises:
        ValueError: naming the file when it cannot be read, lacks columns (named), has no rows, a row holds a
            finding that is not in ``class_names``, or an image is listed on more than one row (named with its
            line numbers: a split by row could put one image in both training and validation, and which row's
            labels hold is not for the reader to guess, so duplicates are refused rather than dropped).
    """
    path = Path(csv_path)
    index = {name: i for i, name in enumerate(class_names)}
    names: list[str] = []
    patients: list[str] = []
    rows: list[list[int]] = []
    lines: dict[str, list[int]] = {}
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        # utf-8-sig: a BOM would otherwise become part of the first column's name ("\ufeffImage Index").
        with opener(path, "rt", newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = [c for c in CHESTXRAY14_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(
                    f"ChestX-ray14 table {path} lacks the columns {missing} (has {reader.fieldnames})."
                )
            for line, row in enumerate(reader, start=2):
                hot = []
                for finding in (row["Finding Labels"] or "").split("|"):
                    finding = finding.strip()
                    if finding == NO_FINDING:
                        continue
                    if finding not in index:
                        raise ValueError(
                            f"ChestX-ray14 table {path}, line {line}: finding {finding!r} is none of "
                            f"{list(class_names)} or {NO_FINDING!r}."
                        )
                    hot.append(index[finding])
                names.append(row["Image Index"])
                lines.setdefault(row["Image Index"], []).append(line)
                patients.append(row["Patient ID"])
                rows.append(hot)
    except (OSError, UnicodeDecodeError, csv.Error, EOFError) as e:
        raise ValueError(f"ChestX-ray14 table {path} cannot be read: {e}") from e
    if not names:
        raise ValueError(f"ChestX-ray14 table {path} has no rows.")
    duplicates = {name: at for name, at in lines.items() if len(at) > 1}
    if duplicates:
        shown = "; ".join(f"{name!r} on lines {at}" for name, at in list(duplicates.items())[:3])
        raise ValueError(
            f"ChestX-ray14 table {path} lists {len(duplicates)} image(s) on more than one row ({shown}); a split "
            "by row could put one image in both training and validation: keep one row per image."
        )
    labels = np.zeros((len(rows), len(class_names)), dtype=np.float32)
    for r, hot in enumerate(rows):
        labels[r, hot] = 1.0
    return names, labels, patients


def _check_val_fraction(val_fraction: float) -> None:
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")


def random_split(num_items: int, val_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """
    A seeded random split by item: ``round(num_items * val_fraction)`` validation items, the rest for
    training (the paper's 4:1 split of ChestX-ray14 by image: 89,696 / 22,424 of its 112,120 images).

    Args:
        num_items: number of items.
        val_fraction: fraction held out for validation, in (0, 1).
        seed: seed of the permutation.

    Returns:
        sorted training indices, sorted validation indices.

    Raises:
        ValueError: when ``val_fraction`` is outside (0, 1).
    """
    _check_val_fraction(val_fraction)
    order = np.random.default_rng(seed).permutation(num_items)
    num_val = int(round(num_items * val_fraction))
    return np.sort(order[num_val:]), np.sort(order[:num_val])


def patient_split(
    patient_ids: Sequence[str], val_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """
    A seeded random split by patient: whole patients go to validation, in a random order, until it holds at
    least ``round(len(patient_ids) * val_fraction)`` items, so no patient is in both parts (follow-up images
    of one patient are alike, and a split by image lets a model recognise the patient).

    Args:
        patient_ids: the patient of each item.
        val_fraction: fraction of the items held out for validation, in (0, 1).
        seed: seed of the patient permutation.

    Returns:
        sorted training indices, sorted validation indices.

    Raises:
        ValueError: when ``val_fraction`` is outside (0, 1).
    """
    _check_val_fraction(val_fraction)
    patients, inverse = np.unique(np.asarray(patient_ids), return_inverse=True)
    counts = np.bincount(inverse, minlength=len(patients))
    order = np.random.default_rng(seed).permutation(len(patients))
    target = int(round(len(patient_ids) * val_fraction))
    # The first patients whose running image count reaches the target (the last one may overshoot it).
    num_val_patients = int(np.searchsorted(np.cumsum(counts[order]), target) + 1) if target > 0 else 0
    is_val = np.zeros(len(patients), dtype=bool)
    is_val[order[:num_val_patients]] = True
    val = np.flatnonzero(is_val[inverse])
    train = np.flatnonzero(~is_val[inverse])
    return train, val


def _check_image(path: Path, check: str) -> None:
    if check == "none":
        return
    try:
        with Image.open(path) as img:
            if check == "decode":
                img.load()
    except Exception as e:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ... for bad files
        raise ValueError(f"image {path} cannot be read as an image: {e}") from e


def chestxray14_datalists(
    dataset_dir: str | os.PathLike,
    val_fraction: float = 0.2,
    seed: int = 0,
    patient_wise: bool = False,
    require_images: bool = True,
    check_images: str = "header",
    max_samples: int | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """
    Training and validation data lists of a ChestX-ray14 folder in the official layout:
    ``Data_Entry_2017*.csv`` (or ``.csv.gz``) and ``images/<Image Index>``.

    The split is made on the full table, before any image is looked for, so the split of the images present
    is the same as on the complete data set (89,696 / 22,424 for the paper's random 4:1 split by image).

    Args:
        dataset_dir: the data set folder.
        val_fraction: fraction held out for validation.
        seed: seed of the split.
        patient_wise: split by ``Patient ID`` (no patient in both parts) instead of by image.
        require_images: ``True``: a row whose image is missing is an error. ``False``: such rows are dropped
            with a warning (for a partial copy, e.g. only some of the twelve image archives extracted).
        check_images: ``"header"`` opens every listed image (cheap: catches files that are not images),
            ``"decode"`` also decodes its pixels (catches truncated files; reads the whole data set),
            ``"none"`` skips the check.
        max_samples: keep only the first ``max_samples`` items of each part (quick runs); ``None``: all.

    Returns:
        ``{"train": [...], "val": [...]}``, items ``{"image": absolute path, "label": float32 (14,) 0/1,
        "name": image file name, "patient": Patient ID}``.

    Raises:
        ValueError: naming the folder or file at fault: no label table, a table without the expected columns,
            an empty or missing ``images/`` folder, a missing image (``require_images``), an unreadable image,
            an empty part after dropping rows without images.
    """
    if check_images not in CHECK_IMAGES:
        raise ValueError(f"check_images must be one of {CHECK_IMAGES}, got {check_images!r}.")
    root = Path(dataset_dir).resolve()
    csv_path = find_chestxray14_csv(root)
    names, labels, patients = read_chestxray14_csv(csv_path)
    images_dir = root / "images"
    if not images_dir.is_dir():
        raise ValueError(f"ChestX-ray14 folder {root} has no images/ folder next to {csv_path.name}.")
    present = {e.name for e in os.scandir(images_dir) if e.is_file()}
    if not present:
        raise ValueError(f"ChestX-ray14 image folder {images_dir} is empty.")

    train_idx, val_idx = (
        patient_split(patients, val_fraction, seed) if patient_wise else random_split(len(names), val_fraction, seed)
    )
    missing = [names[i] for i in range(len(names)) if names[i] not in present]
    if missing:
        if require_images:
            raise ValueError(
                f"{len(missing)} of the {len(names)} images listed in {csv_path} are missing from {images_dir} "
                f"(first: {missing[:3]}); set require_images to false to train on the images present."
            )
        warnings.warn(
            f"dropping {len(missing)} of the {len(names)} rows of {csv_path} whose image is missing from "
            f"{images_dir}.",
            stacklevel=2,
        )
    lists: dict[str, list[dict[str, Any]]] = {}
    for part, idx in (("train", train_idx), ("val", val_idx)):
        items = [
            {"image": str(images_dir / names[i]), "label": labels[i], "name": names[i], "patient": patients[i]}
            for i in idx
            if names[i] in present
        ]
        if not items:
            raise ValueError(
                f"no {part} image of {csv_path} is present in {images_dir} (split val_fraction={val_fraction}, "
                f"seed={seed}, patient_wise={patient_wise})."
            )
        lists[part] = items[:max_samples] if max_samples is not None else items
    for items in lists.values():
        for item in items:
            _check_image(Path(item["image"]), check_images)
    return lists


# ---------------------------------------------------------------------------------------------------------
# MedMNIST
# ---------------------------------------------------------------------------------------------------------


def _num_classes(labels: Mapping[str, np.ndarray], task: str) -> int:
    if task == "multi-label" or labels["train"].shape[1] > 1:  # 0/1 columns, or one-hot rows
        return int(labels["train"].shape[1])
    return int(max(int(y.max()) for y in labels.values() if y.size) + 1)


def _to_uint8(images: np.ndarray, num: int, path: Path, key: str) -> np.ndarray:
    """
    The first ``num`` images as uint8: MedMNIST's own uint8 as they are; integers in [0, 255] cast; floats
    scaled from [0, 1] or taken as [0, 255] (decided for the whole key by its range), rounded as a PNG would be.
    """
    if images.dtype == np.uint8 or images.size == 0:
        return images[:num].astype(np.uint8, copy=False)
    is_int = np.issubdtype(images.dtype, np.integer)
    if not is_int and not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"MedMNIST file {path}: {key} has dtype {images.dtype}, expected uint8, integers in [0, 255], or floats "
            "in [0, 1] or [0, 255]."
        )
    if not is_int and not np.isfinite(images).all():
        raise ValueError(f"MedMNIST file {path}: {key} holds NaN or infinite values.")
    lo, hi = float(images.min()), float(images.max())
    # A value counts as in range when it rounds into [0, 255] after scaling. A float maximum between 1 and 2
    # is refused: read as [0, 255] it would make nearly black images, read as [0, 1] it is out of range.
    if not is_int and lo >= -0.5 / 255 and hi <= 1.0 + 0.5 / 255:
        scale = 255.0
    elif lo < -0.5 or hi > 255.5 or (not is_int and hi < 2.0):
        raise ValueError(
            f"MedMNIST file {path}: {key} ({images.dtype}) holds values in [{lo:g}, {hi:g}], expected "
            f"{'[0, 255]' if is_int else '[0, 1] or [0, 255]'}."
        )
    else:
        scale = 1.0
    return np.clip(np.round(images[:num].astype(np.float32) * scale), 0, 255).astype(np.uint8)


def _to_channels(images: np.ndarray, in_channels: int, path: Path, key: str) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) uint8 -> (N, in_channels, H, W), converting colour as PIL's 'L' / 'RGB' do."""
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"MedMNIST file {path}: {key} has shape {images.shape}, expected (N, H, W) or (N, H, W, 1 or 3) "
            "2D images (3D MedMNIST volumes are not supported)."
        )
    if images.shape[-1] == 3 and in_channels == 1:
        # ITU-R 601-2 luma, PIL's RGB -> L, so an .npz and a PNG of the same image give the same input.
        luma = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        images = np.clip(np.round(luma), 0, 255).astype(np.uint8)[..., None]
    elif images.shape[-1] == 1 and in_channels == 3:
        images = np.repeat(images, 3, axis=-1)
    return np.ascontiguousarray(np.moveaxis(images, -1, 1))


def medmnist_datalists(
    npz_path: str | os.PathLike,
    task: str | None = None,
    in_channels: int = 1,
    max_samples: int | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """
    Data lists of a MedMNIST v2 ``.npz`` file (``{train,val,test}_images`` uint8 ``(N, H, W[, 3])``,
    ``{train,val,test}_labels`` ``(N, 1)`` class indices or ``(N, K)`` 0/1 columns), with its official split.

    Images of another dtype are converted to uint8: integers must lie in [0, 255]; floats in [0, 1] (when a
    key's maximum is at most 1, scaled by 255) or in [0, 255], rounded. Anything else is refused, as are
    negative or fractional labels.

    Labels are float32 rows of one column per class: one-hot for ``"multi-class"`` (which
    ``torch.nn.CrossEntropyLoss`` takes as class probabilities and ``compute_roc_auc`` as 0/1 columns), the 0/1
    columns themselves for ``"multi-label"``.

    Args:
        npz_path: the ``.npz`` file.
        task: ``"multi-class"`` or ``"multi-label"``; ``None``: :func:`infer_task`.
        in_channels: 1 (colour is converted to grey) or 3 (grey is repeated).
        max_samples: keep only the first ``max_samples`` items of each split; ``None``: all.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` (``test`` when the file has it), items
        ``{"image": uint8 (in_channels, H, W), "label": float32 (K,), "name": "<split>_<index>"}``.

    Raises:
        ValueError: naming the file: unreadable, keys missing (named), images and labels of different counts,
            images that are not 2D, images of another dtype or range (naming the key and the range found),
            negative or fractional labels (naming the key and row), labels that do not fit ``task``, a bad
            ``task`` or ``in_channels``.
    """
    path = Path(npz_path)
    task = task or infer_task(path)
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3, got {in_channels}.")
    with _open_npz(path) as npz:
        labels = _npz_labels(npz, path)
        num_classes = _num_classes(labels, task)
        lists: dict[str, list[dict[str, Any]]] = {}
        for split, y in labels.items():
            if f"{split}_images" not in npz.files:
                raise ValueError(f"MedMNIST file {path} has {split}_labels but lacks the key {split}_images.")
            n = len(y) if max_samples is None else min(len(y), max_samples)
            images = np.asarray(npz[f"{split}_images"])
            if len(images) != len(y):
                raise ValueError(
                    f"MedMNIST file {path}: {split}_images holds {len(images)} images but {split}_labels "
                    f"{len(y)} labels."
                )
            images = _to_channels(_to_uint8(images, n, path, f"{split}_images"), in_channels, path, f"{split}_images")
            lists[split] = [
                {
                    "image": images[i],
                    "label": _medmnist_label(y[i], task, num_classes, path, split, i),
                    "name": f"{split}_{i}",
                }
                for i in range(n)
            ]
    if not lists["train"] or not lists["val"]:
        raise ValueError(f"MedMNIST file {path} has an empty train or val split.")
    return lists


def _medmnist_label(y: np.ndarray, task: str, num_classes: int, path: Path, split: str, i: int) -> np.ndarray:
    if task == "multi-label":
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"MedMNIST file {path}: {split}_labels[{i}] = {y.tolist()} is not a 0/1 multi-label row.")
        return y.astype(np.float32)
    if len(y) > 1:  # one-hot rows given for a multi-class task
        if not (np.isin(y, (0, 1)).all() and y.sum() == 1):
            raise ValueError(
                f"MedMNIST file {path}: {split}_labels[{i}] = {y.tolist()} is not one-hot; its labels look "
                "multi-label, use task 'multi-label'."
            )
        return y.astype(np.float32)
    one_hot = np.zeros(num_classes, dtype=np.float32)
    one_hot[int(y[0])] = 1.0
    return one_hot


# ---------------------------------------------------------------------------------------------------------
# Bundle entry points
# ---------------------------------------------------------------------------------------------------------


def classification_datalists(
    path: str | os.PathLike,
    task: str | None = None,
    in_channels: int = 1,
    val_fraction: float = 0.2,
    seed: int = 0,
    patient_wise: bool = False,
    require_images: bool = True,
    check_images: str = "header",
    max_samples: int | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """
    The data lists of either format, checked before training starts: :func:`chestxray14_datalists` for a
    folder (``task`` must be ``"multi-label"``; images are read, and converted to ``in_channels``, by the
    bundle's loader), :func:`medmnist_datalists` for a ``.npz`` file (its official split; ``val_fraction``,
    ``seed``, ``patient_wise``, ``require_images`` and ``check_images`` do not apply).

    Args:
        path: a ChestX-ray14 folder or a MedMNIST ``.npz`` file.
        task: ``"multi-label"`` or ``"multi-class"``; ``None``: :func:`infer_task`.
        in_channels: input channels of the network, 1 or 3.
        val_fraction: see :func:`chestxray14_datalists`.
        seed: see :func:`chestxray14_datalists`.
        patient_wise: see :func:`chestxray14_datalists`.
        require_images: see :func:`chestxray14_datalists`.
        check_images: see :func:`chestxray14_datalists`.
        max_samples: keep only the first ``max_samples`` items of each part; ``None``: all.

    Raises:
        ValueError: as the format's function, or ``"multi-class"`` for ChestX-ray14.
    """
    if data_format(path) == "medmnist":
        return medmnist_datalists(path, task=task, in_channels=in_channels, max_samples=max_samples)
    if task not in (None, "multi-label"):
        raise ValueError(f"ChestX-ray14 ({path}) is a multi-label task, got task={task!r}.")
    return chestxray14_datalists(
        path,
        val_fraction=val_fraction,
        seed=seed,
        patient_wise=patient_wise,
        require_images=require_images,
        check_images=check_images,
        max_samples=max_samples,
    )


def image_folder_datalist(folder: str | os.PathLike, check_images: str = "header") -> list[dict[str, Any]]:
    """
    Data list of the images (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``) directly inside ``folder``, sorted by
    name, for inference on unlabelled images.

    Args:
        folder: the image folder.
        check_images: ``"header"``, ``"decode"`` or ``"none"``, as in :func:`chestxray14_datalists`.

    Returns:
        ``[{"image": absolute path, "name": file name}, ...]``.

    Raises:
        ValueError: naming the folder when it is missing or holds no image, or the unreadable file.
    """
    root = Path(folder).resolve()
    if not root.is_dir():
        raise ValueError(f"image folder {root} is not a folder.")
    images = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"image folder {root} holds no {'/'.join(IMAGE_SUFFIXES)} images.")
    for p in images:
        _check_image(p, check_images)
    return [{"image": str(p), "name": p.name} for p in images]


def inference_datalist(
    path: str | os.PathLike,
    task: str | None = None,
    in_channels: int = 1,
    check_images: str = "header",
    max_samples: int | None = None,
) -> list[dict[str, Any]]:
    """
    The images an inference run predicts: a folder of images (:func:`image_folder_datalist`), the ``images/``
    of a ChestX-ray14 folder (every image, labelled or not), or the ``val`` images of a MedMNIST ``.npz``.

    Args:
        path: a folder of images, a ChestX-ray14 folder, or a MedMNIST ``.npz`` file.
        task: for a ``.npz``: see :func:`medmnist_datalists`.
        in_channels: for a ``.npz``: see :func:`medmnist_datalists`.
        check_images: for a folder: see :func:`chestxray14_datalists`.
        max_samples: for a ``.npz``: see :func:`medmnist_datalists` (a folder is predicted whole).

    Returns:
        ``[{"image": absolute path or uint8 array, "name": ...}, ...]``, without labels.

    Raises:
        ValueError: as :func:`image_folder_datalist` or :func:`medmnist_datalists`, naming the path.
    """
    if data_format(path) == "medmnist":
        items = medmnist_datalists(path, task=task, in_channels=in_channels, max_samples=max_samples)["val"]
        return [{"image": item["image"], "name": item["name"]} for item in items]
    folder = Path(path) / "images" if (Path(path) / "images").is_dir() else Path(path)
    return image_folder_datalist(folder, check_images=check_images)


def label_frequencies(labels: Sequence[Mapping[str, Any]] | np.ndarray) -> np.ndarray:
    """
    Fraction of positive items per class.

    Args:
        labels: ``(N, K)`` 0/1 labels, or a data list whose items hold them under ``"label"``.
    """
    y = np.stack([np.asarray(d["label"]) for d in labels]) if not isinstance(labels, np.ndarray) else labels
    return y.reshape(len(y), -1).astype(np.float64).mean(axis=0)


def positive_weights(labels: Sequence[Mapping[str, Any]] | np.ndarray) -> torch.Tensor:
    """
    The positive weight of each class for ``torch.nn.BCEWithLogitsLoss(pos_weight=...)``: negatives over
    positives in the training labels, so both sides of every class weigh the same in the loss (the weighted
    cross-entropy the paper takes from Wang et al., CVPR 2017, with the class ratios of the whole training
    set rather than of each batch). A class without positives gets the weight of one positive.

    Args:
        labels: ``(N, K)`` 0/1 labels, or a data list whose items hold them under ``"label"``.

    Returns:
        float32 tensor of shape ``(K,)``.
    """
    y = np.stack([np.asarray(d["label"]) for d in labels]) if not isinstance(labels, np.ndarray) else labels
    positives = y.reshape(len(y), -1).sum(axis=0)
    return torch.as_tensor((len(y) - positives) / np.maximum(positives, 1.0), dtype=torch.float32)


# ---------------------------------------------------------------------------------------------------------
# Synthetic ChestX-ray14
# ---------------------------------------------------------------------------------------------------------


def _cue_codes(num_classes: int) -> np.ndarray:
    """Distinct 4x4 binary cue patterns, one per class, at least 4 bits apart (fixed, not seeded per run)."""
    rng = np.random.default_rng(14)
    codes: list[np.ndarray] = []
    while len(codes) < num_classes:
        code = rng.random(16) < 0.5
        if 5 <= code.sum() <= 11 and all((code != c).sum() >= 4 for c in codes):
            codes.append(code)
    return np.stack(codes).reshape(num_classes, 4, 4)


def write_synthetic_chestxray14(
    output_dir: str | os.PathLike,
    num_samples: int = 128,
    image_size: int = 128,
    seed: int = 0,
    positive_rate: float = 0.2,
    decoy_rate: float = 0.35,
) -> str:
    """
    Write a deterministic synthetic data set in the ChestX-ray14 layout (``Data_Entry_2017.csv`` with the
    official columns, ``images/<patient>_<follow-up>.png`` 8-bit grey) whose findings need long-range context.

    Each image is a noisy chest-like background (body, two darker lung fields) on which small cue patterns sit
    in an 8x8 grid of cells, one 4x4-bit pattern (bright and dark bits) per pathology. A pathology is present
    exactly when its pattern appears in **both** halves of the image, one copy left and one right of the
    midline. Decoys (a single copy, or two copies in the same half) are about as frequent, so seeing one cue, or
    counting them, is not enough: the label depends on a cue on the other side of the image, half an image away.

    The cues of the findings present are listed, one box per cue, in ``BBox_List_2017.csv`` (the official
    localisation table's columns: image, finding, x, y, w, h), to check where class activation maps point.
    Patients have one to three images (``Follow-up #``), so a patient-wise split differs from an image-wise
    one. Image ``i`` is the same for a given ``seed`` whatever ``num_samples`` is.

    Args:
        output_dir: the folder to write (created; an existing table and images of the same names are
            overwritten).
        num_samples: number of images.
        image_size: side of the square images, a multiple of 8 of at least 32 (a grid cell is
            ``image_size // 8`` pixels, a cue pattern bit ``max(1, image_size // 40)``).
        seed: seed of the data set.
        positive_rate: probability that a pathology is present in an image.
        decoy_rate: probability that an absent pathology shows a decoy.

    Returns:
        ``output_dir``, as a string (for a bundle's ``dataset_dir``).

    Raises:
        ValueError: on a bad ``num_samples`` or ``image_size``.
    """
    if num_samples < 2:
        raise ValueError(f"num_samples must be at least 2 (one training and one validation image), got {num_samples}.")
    if image_size < 32 or image_size % 8:
        raise ValueError(f"image_size must be a multiple of 8 of at least 32, got {image_size}.")
    root = Path(output_dir)
    (root / "images").mkdir(parents=True, exist_ok=True)
    codes = _cue_codes(len(CHESTXRAY14_CLASSES))
    cell = image_size // 8
    bit = max(1, cell // 5)  # leaves a margin between cues in neighbouring cells from 64 pixels up
    yy, xx = np.mgrid[0:image_size, 0:image_size] / image_size
    body = ((xx - 0.5) / 0.46) ** 2 + ((yy - 0.55) / 0.5) ** 2 < 1.0
    lungs = (((np.abs(xx - 0.5) - 0.2) / 0.14) ** 2 + ((yy - 0.5) / 0.3) ** 2) < 1.0
    background = 40.0 + 90.0 * body - 45.0 * lungs

    out, boxes = io.StringIO(), io.StringIO()
    out.write(_CHESTXRAY14_HEADER + "\n")
    boxes.write("Image Index,Finding Label,Bbox [x,y,w,h],,,\n")
    patient, follow_up = 1, 0
    patient_rng = np.random.default_rng([seed, 1])
    visits = int(patient_rng.integers(1, 4))
    for i in range(num_samples):
        if follow_up == visits:
            patient, follow_up, visits = patient + 1, 0, int(patient_rng.integers(1, 4))
        name = f"{patient:08d}_{follow_up:03d}.png"
        rng = np.random.default_rng([seed, 0, i])
        image = background.copy()
        # Cells of each half, in random order; every cue takes the next free cell of its half.
        free = [list(rng.permutation(32)), list(rng.permutation(32))]
        findings = []
        for c, code in enumerate(codes):
            positive = rng.random() < positive_rate
            if positive:
                halves = [0, 1]
                findings.append(CHESTXRAY14_CLASSES[c])
            elif rng.random() < decoy_rate:
                side = int(rng.integers(2))
                halves = [side] * int(rng.integers(1, 3))
            else:
                halves = []
            for half in halves:
                k = free[half].pop()
                row, col = divmod(k, 4)
                y0, x0 = row * cell + (cell - 4 * bit) // 2, (half * 4 + col) * cell + (cell - 4 * bit) // 2
                # Drawn over, not added: a cue on the body's edge reads the same as one inside the lungs.
                image[y0 : y0 + 4 * bit, x0 : x0 + 4 * bit] = np.where(np.kron(code, np.ones((bit, bit))), 210.0, 30.0)
                if positive:
                    boxes.write(f"{name},{CHESTXRAY14_CLASSES[c]},{x0},{y0},{4 * bit},{4 * bit}\n")
        image += rng.normal(0.0, 8.0, (image_size, image_size))
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / "images" / name)
        labels = "|".join(findings) or NO_FINDING
        age, gender = 20 + (patient * 7) % 60, "MF"[patient % 2]
        out.write(f"{name},{labels},{follow_up},{patient},{age},{gender},PA,{image_size},{image_size},0.143,0.143\n")
        follow_up += 1
    (root / "Data_Entry_2017.csv").write_text(out.getvalue())
    (root / "BBox_List_2017.csv").write_text(boxes.getvalue())
    return str(root)
