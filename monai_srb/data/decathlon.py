"""
Medical Segmentation Decathlon (MSD) data sets: checked data lists of a ``dataset.json`` folder (or of a
plain folder of NIfTI files, for inference) and the class names it gives.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from monai.data import load_decathlon_datalist

__all__ = ["decathlon_class_names", "load_decathlon_data", "load_nifti_images"]


def _files(entry: str | Sequence[str]) -> list[str]:
    # MSD allows an image to be one multi-channel file or a list of single-channel files.
    return [entry] if isinstance(entry, (str, os.PathLike)) else [str(e) for e in entry]


def _outside(root: Path, entry: Any) -> list[str]:
    """The image and label paths of a ``dataset.json`` entry that, joined to ``root``, do not lie inside it."""
    fields = entry.items() if isinstance(entry, dict) else [("image", entry)]
    paths: list[str] = []
    for key, value in fields:
        if key in ("image", "label"):
            values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
            paths += [f for f in values if isinstance(f, str)]
    # Lexical, as load_decathlon_datalist joins them: a '..' escape or an absolute path elsewhere is refused,
    # while a symlinked imagesTr/ (data kept on another disk) is still followed.
    joined = {f: os.path.normpath(os.path.join(root, f)) for f in paths}
    return [f for f, j in joined.items() if os.path.commonpath([str(root), j]) != str(root)]


def _check_affines(path: str, other: str, a: Any, b: Any, affine_tol: float) -> None:
    diff = float(np.abs(np.asarray(a.affine) - np.asarray(b.affine)).max())
    if not diff <= affine_tol:  # also refuses NaN
        raise ValueError(
            f"{path} and {other} have affines that differ by up to {diff:.3g} (mm, per entry; affine_tol="
            f"{affine_tol}): they do not lie on the same voxel grid, and nothing is resampled to make them."
        )


def _open_nifti(path: str, what: str, read_data: bool) -> nib.spatialimages.SpatialImage:
    if not os.path.isfile(path):
        raise ValueError(f"{what} file {path} does not exist.")
    try:
        img = nib.load(path)
        if read_data:
            # A truncated .nii.gz has a valid header; only decompressing the voxels finds it.
            np.asanyarray(img.dataobj)
    except Exception as e:  # nibabel raises several types (ImageFileError, EOFError, zlib.error, ...)
        raise ValueError(f"{what} file {path} cannot be read as NIfTI: {e}") from e
    return img


def load_decathlon_data(
    dataset_dir: str | os.PathLike,
    data_list_key: str = "training",
    num_classes: int | None = None,
    in_channels: int | None = None,
    read_data: bool = False,
    affine_tol: float = 1e-3,
) -> list[dict[str, Any]]:
    """
    Read ``dataset_dir/dataset.json`` (MSD layout: paths relative to ``dataset_dir``) with
    :func:`monai.data.load_decathlon_datalist` and check every entry, so that bad data stops a run while
    its data list is built, not in the middle of training.

    Checks: ``dataset.json`` exists, parses and holds a non-empty ``data_list_key`` list; every entry's
    paths lie inside ``dataset_dir`` (once joined to it and normalised: ``..`` escapes and absolute paths
    elsewhere are refused; symlinks inside it are followed); every image (and, except for ``"test"``, every
    label) file exists and has a readable NIfTI header; the label has the image's spatial shape and affine
    (to ``affine_tol``; the files of a multi-file image too), so no label is resampled or silently
    misaligned; the image has ``in_channels`` channels; ``labels`` lists ``num_classes``
    classes; with ``read_data``, every file's voxels decompress and the label values lie in
    ``[0, num_classes)``.

    Args:
        dataset_dir: the data set folder, holding ``dataset.json``.
        data_list_key: ``"training"``, ``"validation"`` or ``"test"`` (the last has images only).
        num_classes: expected number of classes (background included), or ``None`` to skip that check.
        in_channels: expected image channels (a 4D NIfTI's last axis, or the files in an image list),
            or ``None`` to skip that check.
        read_data: also decompress every volume (catches truncated files and out-of-range labels; costs a
            full read of the data set, headers only otherwise).
        affine_tol: largest difference allowed between any two entries of an image's and its label's
            voxel-to-world affines (mm). The default, 1e-3, is far below a voxel and above the float32
            rounding of the NIfTI header (below 1e-4 for origins within 1000 mm).

    Returns:
        ``[{"image": path, "label": path}, ...]`` (``[{"image": path}, ...]`` for ``"test"``), absolute paths.

    Raises:
        ValueError: naming the file at fault for each failed check.
    """
    dataset_json = Path(dataset_dir) / "dataset.json"
    if not dataset_json.is_file():
        raise ValueError(f"{dataset_json} not found: dataset_dir must be an MSD data set folder with a dataset.json.")
    try:
        properties = json.loads(dataset_json.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{dataset_json} cannot be parsed as JSON: {e}") from e
    if not isinstance(properties.get(data_list_key), list) or not properties[data_list_key]:
        raise ValueError(f"{dataset_json} has no non-empty '{data_list_key}' list.")
    if not affine_tol >= 0.0:
        raise ValueError(f"affine_tol must be >= 0, got {affine_tol}.")
    root = Path(dataset_dir).resolve()
    for n, entry in enumerate(properties[data_list_key]):
        outside = _outside(root, entry)
        if outside:
            raise ValueError(
                f"{dataset_json}: '{data_list_key}' entry {n} {entry!r} points outside the data set folder {root} "
                f"({outside}); its paths must be relative to that folder and stay inside it."
            )
    if num_classes is not None and len(properties.get("labels", {})) != num_classes:
        raise ValueError(
            f"{dataset_json} lists labels {properties.get('labels')}, expected num_classes={num_classes} classes."
        )
    datalist = load_decathlon_datalist(dataset_json, data_list_key=data_list_key, base_dir=Path(dataset_dir).resolve())

    is_labelled = data_list_key != "test"
    for item in datalist:
        images = [_open_nifti(path, "image", read_data) for path in _files(item["image"])]
        image_path = _files(item["image"])[0]
        spatial = tuple(images[0].shape[:3])
        channels = images[0].shape[3] if len(images) == 1 and len(images[0].shape) == 4 else len(images)
        if in_channels is not None and channels != in_channels:
            raise ValueError(f"image file {image_path} has {channels} channel(s), expected in_channels={in_channels}.")
        for path, img in zip(_files(item["image"])[1:], images[1:]):
            if tuple(img.shape[:3]) != spatial:
                raise ValueError(f"image file {path} has shape {img.shape}, expected {spatial} as {image_path}.")
            _check_affines(f"image file {path}", f"image file {image_path}", img, images[0], affine_tol)
        if not is_labelled:
            continue
        if "label" not in item:
            raise ValueError(f"{dataset_json}: '{data_list_key}' entry for {image_path} has no 'label'.")
        label_path = str(item["label"])
        label = _open_nifti(label_path, "label", read_data)
        # A 4D label with a singleton last axis is the same map; anything else is not a label map of this image.
        label_shape = tuple(label.shape[:3]) if label.shape[3:] in ((), (1,)) else tuple(label.shape)
        if label_shape != spatial:
            raise ValueError(
                f"label file {label_path} has shape {tuple(label.shape)}, expected the spatial shape {spatial} "
                f"of its image {image_path}."
            )
        _check_affines(f"label file {label_path}", f"its image {image_path}", label, images[0], affine_tol)
        if read_data and num_classes is not None:
            values = np.unique(np.asanyarray(label.dataobj))
            if values.min() < 0 or values.max() >= num_classes or not np.all(values == np.round(values)):
                raise ValueError(
                    f"label file {label_path} holds values {values.tolist()[:10]}, "
                    f"expected integers in [0, {num_classes})."
                )
    return datalist


def decathlon_class_names(dataset_dir: str | os.PathLike, num_classes: int) -> list[str]:
    """
    Names of the foreground classes ``1 .. num_classes - 1`` from ``dataset_dir/dataset.json``'s ``labels``,
    lower-cased with runs of other characters than letters and digits as ``_`` (metric names such as
    ``Dice_anterior``; MSD Task04: ``["anterior", "posterior"]``).

    Args:
        dataset_dir: the data set folder, holding ``dataset.json``.
        num_classes: number of classes, background included.

    Raises:
        ValueError: when ``dataset.json`` is missing or unreadable, or its ``labels`` do not name the
            classes ``0 .. num_classes - 1``.
    """
    dataset_json = Path(dataset_dir) / "dataset.json"
    try:
        labels = json.loads(dataset_json.read_text()).get("labels")
    except (OSError, ValueError, AttributeError) as e:
        raise ValueError(f"{dataset_json} cannot be read as a dataset.json: {e}") from e
    expected = [str(c) for c in range(num_classes)]
    if not isinstance(labels, dict) or sorted(labels, key=str) != sorted(expected):
        raise ValueError(f"{dataset_json} has labels {labels}, expected names for the classes {expected}.")
    return [re.sub(r"[^a-z0-9]+", "_", str(labels[c]).lower()).strip("_") for c in expected[1:]]


def load_nifti_images(
    folder: str | os.PathLike, data_list_key: str = "test", in_channels: int | None = None, read_data: bool = False
) -> list[dict[str, Any]]:
    """
    Images to predict: the ``data_list_key`` list of an MSD folder (one with a ``dataset.json``, read by
    :func:`load_decathlon_data`), or else every ``*.nii`` / ``*.nii.gz`` file directly in ``folder``.

    Args:
        folder: an MSD data set folder or a plain folder of NIfTI files.
        data_list_key: the ``dataset.json`` list to read (``"test"``; ``"training"`` for a data set without
            a test list, e.g. MSD Task04 as distributed here). Unused for a plain folder.
        in_channels: expected image channels, or ``None`` to skip that check.
        read_data: also decompress every volume.

    Returns:
        ``[{"image": path}, ...]``, absolute paths (sorted by name for a plain folder).

    Raises:
        ValueError: when ``folder`` is not a folder, holds no NIfTI file, or an image fails the checks of
            :func:`load_decathlon_data`.
    """
    folder = Path(folder)
    if (folder / "dataset.json").is_file():
        items = load_decathlon_data(folder, data_list_key, in_channels=in_channels, read_data=read_data)
        return [{"image": item["image"]} for item in items]
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder: expected an MSD data set folder or a folder of NIfTI files.")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith((".nii", ".nii.gz")))
    if not paths:
        raise ValueError(f"{folder} has neither a dataset.json nor any .nii / .nii.gz file.")
    for path in paths:
        img = _open_nifti(str(path), "image", read_data)
        channels = img.shape[3] if len(img.shape) == 4 else 1
        if in_channels is not None and channels != in_channels:
            raise ValueError(f"image file {path} has {channels} channel(s), expected in_channels={in_channels}.")
    return [{"image": str(path.resolve())} for path in paths]
