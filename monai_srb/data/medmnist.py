"""
MedMNIST v2 (Yang et al., Scientific Data 2023) ``.npz`` files: checked data lists of their official
train / val / test split, multi-class or multi-label (ChestMNIST), images converted to uint8 with the
network's channel count.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from monai.utils import look_up_option

__all__ = ["MEDMNIST_KEYS", "TASKS", "medmnist_class_names", "medmnist_datalists", "medmnist_task"]

MEDMNIST_KEYS = ("train_images", "train_labels", "val_images", "val_labels")
# The classification tasks: 0/1 columns (one sigmoid per class), or one class per image (softmax).
TASKS = ("multi-label", "multi-class")


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


def medmnist_task(npz_path: str | os.PathLike) -> str:
    """
    The task a MedMNIST file's labels imply: ``"multi-class"`` when they are one class index per image
    (``(N, 1)``), ``"multi-label"`` when they are one 0/1 column per class (``(N, K)``, e.g. ChestMNIST).

    Args:
        npz_path: the ``.npz`` file.

    Raises:
        ValueError: naming the file when it cannot be read, lacks the MedMNIST keys or holds bad labels.
    """
    path = Path(npz_path)
    with _open_npz(path) as npz:
        labels = _npz_labels(npz, path)
    return "multi-class" if labels["train"].shape[1] == 1 else "multi-label"


def medmnist_class_names(npz_path: str | os.PathLike, task: str | None = None) -> list[str]:
    """
    ``"0"``, ``"1"``, ... for each class of a MedMNIST file (its ``.npz`` carries no names).

    Args:
        npz_path: the ``.npz`` file.
        task: ``"multi-label"`` or ``"multi-class"``; ``None``: :func:`medmnist_task`.

    Raises:
        ValueError: as :func:`medmnist_task`.
    """
    path = Path(npz_path)
    with _open_npz(path) as npz:
        labels = _npz_labels(npz, path)
    return [str(i) for i in range(_num_classes(labels, task or medmnist_task(path)))]


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
        task: ``"multi-class"`` or ``"multi-label"``; ``None``: :func:`medmnist_task`.
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
    task = look_up_option(task or medmnist_task(path), TASKS)
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
