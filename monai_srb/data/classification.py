"""
The chest X-ray classification bundle's data, in either format it reads (a ChestX-ray14 folder or a MedMNIST
``.npz`` file): which format a path holds, the task and class names it implies, the checked training,
validation and inference data lists, and the positive weights of the weighted BCE.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai_srb.data.chestxray14 import CHESTXRAY14_CLASSES, chestxray14_datalists
from monai_srb.data.image_checks import folder_images, image_size
from monai_srb.data.medmnist import medmnist_class_names, medmnist_datalists, medmnist_task

__all__ = [
    "classification_datalists",
    "data_format",
    "default_class_names",
    "image_folder_datalist",
    "infer_task",
    "inference_datalist",
    "positive_weights",
]


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


def infer_task(path: str | os.PathLike | None) -> str:
    """
    The task a data set implies: ``"multi-label"`` for ChestX-ray14; for a MedMNIST file, ``"multi-class"``
    when its labels are one class index per image (``(N, 1)``) and ``"multi-label"`` when they are one 0/1
    column per class (``(N, K)``, e.g. ChestMNIST).

    Args:
        path: a MedMNIST ``.npz`` file or a ChestX-ray14 folder; ``None``: the synthetic ChestX-ray14 set
            (:func:`monai_srb.data.write_synthetic_chestxray14`), answered without writing it.

    Raises:
        ValueError: as :func:`data_format`, or for a ``.npz`` without the MedMNIST keys.
    """
    if path is None or data_format(path) == "chestxray14":
        return "multi-label"
    return medmnist_task(path)


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
    return medmnist_class_names(path, task)


def classification_datalists(
    path: str | os.PathLike,
    task: str | None = None,
    in_channels: int = 1,
    max_samples: int | None = None,
    **folder_options: Any,
) -> dict[str, list[dict[str, Any]]]:
    """
    The data lists of either format, checked before training starts: :func:`chestxray14_datalists` for a
    folder (``task`` must be ``"multi-label"``; images are read, and converted to ``in_channels``, by the
    bundle's loader), :func:`medmnist_datalists` for a ``.npz`` file (its official split).

    Args:
        path: a ChestX-ray14 folder or a MedMNIST ``.npz`` file.
        task: ``"multi-label"`` or ``"multi-class"``; ``None``: :func:`infer_task`.
        in_channels: input channels of the network, 1 or 3.
        max_samples: keep only the first ``max_samples`` items of each part; ``None``: all.
        folder_options: ``val_fraction``, ``seed``, ``patient_wise``, ``require_images`` and ``check_images``
            of :func:`chestxray14_datalists`, for a folder; a ``.npz`` file has its own split and ignores them.

    Raises:
        ValueError: as the format's function, or ``"multi-class"`` for ChestX-ray14.
    """
    if data_format(path) == "medmnist":
        return medmnist_datalists(path, task=task, in_channels=in_channels, max_samples=max_samples)
    if task not in (None, "multi-label"):
        raise ValueError(f"ChestX-ray14 ({path}) is a multi-label task, got task={task!r}.")
    return chestxray14_datalists(path, max_samples=max_samples, **folder_options)


def image_folder_datalist(folder: str | os.PathLike, check_images: str = "header") -> list[dict[str, Any]]:
    """
    Data list of the images (``.jpg``, ``.jpeg``, ``.png``, ``.bmp``) directly inside ``folder``, sorted by
    name, for inference on unlabelled images.

    Args:
        folder: the image folder.
        check_images: ``"header"``, ``"decode"`` or ``"none"``, as in :func:`chestxray14_datalists`.

    Returns:
        ``[{"image": absolute path, "name": file name}, ...]``.

    Raises:
        ValueError: naming the folder when it is missing or holds no image, or the unreadable file.
    """
    images = folder_images(folder)
    if check_images != "none":
        for p in images:
            image_size(p, decode=check_images == "decode")
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
