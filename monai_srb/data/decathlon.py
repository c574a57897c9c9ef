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


def _open_nifti(
    path: str, what: str, read_data: bool, listed_in: Path | None = None
) -> tuple[nib.spatialimages.SpatialImage, np.ndarray | None]:
    """The NIfTI file and, with ``read_data``, its voxels, checked to be finite."""
    if not os.path.isfile(path):
        listed = "" if listed_in is None else f" (listed in {listed_in})"
        raise ValueError(f"{what} file {path}{listed} does not exist.")
    try:
        img = nib.load(path)
        # A truncated .nii.gz has a valid header; only decompressing the voxels finds it.
        data = np.asanyarray(img.dataobj) if read_data else None
    except Exception as e:  # nibabel raises several types (ImageFileError, EOFError, zlib.error, ...)
        raise ValueError(f"{what} file {path} cannot be read as NIfTI: {e}") from e
    if data is not None and np.issubdtype(data.dtype, np.floating):
        bad = ~np.isfinite(data)
        if bad.any():
            # One NaN voxel turns the normalised image, the loss and then every weight into NaN.
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{what} file {path} holds {int(bad.sum())} NaN or infinite voxel(s) (the first at {first}), "
                "expected finite values."
            )
    return img, data


def _check_rank(path: str, what: str, shape: tuple[int, ...], channels_last: bool) -> None:
    # A 2D slice or a 5D (time x channel) file would pass the shape checks and fail inside the 3D network.
    if len(shape) == 3 or (len(shape) == 4 and channels_last):
        return
    expected = "3 axes (x, y, z)" + (" or 4 (x, y, z, channel)" if channels_last else "")
    raise ValueError(f"{what} file {path} has shape {shape} ({len(shape)} axes), expected {expected}.")


def _check_entry(dataset_json: Path, key: str, n: int, entry: Any, first: Any) -> None:
    """One entry of a ``dataset.json`` list: ``{"image": path or [paths], "label": path}`` (test: a path too)."""
    where = f"{dataset_json}: '{key}' entry {n} {entry!r}"
    if key == "test" and isinstance(entry, str):
        image: Any = entry
    elif isinstance(entry, dict):
        image = entry.get("image")
        if key != "test" and not isinstance(entry.get("label"), str):
            raise ValueError(f"{where} has no 'label' path (a string), expected {{'image': ..., 'label': ...}}.")
    else:
        raise ValueError(f"{where} is not an object, expected {{'image': ..., 'label': ...}}.")
    if type(entry) is not type(first):
        # load_decathlon_datalist reads a test list by its first entry: all paths, or all objects.
        raise ValueError(f"{where} is not of the kind of entry 0 {first!r}: list paths only, or objects only.")
    is_paths = isinstance(image, list) and bool(image) and all(isinstance(f, str) for f in image)
    if not isinstance(image, str) and not is_paths:
        raise ValueError(f"{where} has no 'image' path (a string, or a list of strings for one file per channel).")


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

    Checks: ``dataset.json`` exists, parses and holds a non-empty ``data_list_key`` list of entries
    ``{"image": path or [path per channel], "label": path}`` (``"test"``: paths, or objects without
    ``"label"``); every entry's paths lie inside ``dataset_dir`` (once joined to it and normalised: ``..``
    escapes and absolute paths elsewhere are refused; symlinks inside it are followed); every image (and,
    except for ``"test"``, every label) file exists and has a readable NIfTI header with 3 axes (x, y, z; a
    one-file image may have 4, channels last, and a label a last axis of 1); the label has the image's
    spatial shape and affine
    (to ``affine_tol``; the files of a multi-file image too), so no label is resampled or silently
    misaligned; the image has ``in_channels`` channels; ``labels`` names the ``num_classes``
    classes ``"0" .. "num_classes - 1"``; with ``read_data``, every file's voxels decompress and are finite
    (no NaN or infinity) and the label values are integers in ``[0, num_classes)``.

    Args:
        dataset_dir: the data set folder, holding ``dataset.json``.
        data_list_key: ``"training"``, ``"validation"`` or ``"test"`` (the last has images only).
        num_classes: expected number of classes (background included), or ``None`` to skip that check.
        in_channels: expected image channels (a 4D NIfTI's last axis, or the files in an image list),
            or ``None`` to skip that check.
        read_data: also decompress every volume (catches truncated files, NaN or infinite voxels and
            out-of-range labels; costs a full read of the data set, headers only otherwise).
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
    if not isinstance(properties, dict):
        raise ValueError(f"{dataset_json} holds {type(properties).__name__}, expected an MSD object with a "
                         f"'{data_list_key}' list.")
    if not isinstance(properties.get(data_list_key), list) or not properties[data_list_key]:
        raise ValueError(f"{dataset_json} has no non-empty '{data_list_key}' list.")
    if not affine_tol >= 0.0:
        raise ValueError(f"affine_tol must be >= 0, got {affine_tol}.")
    root = Path(dataset_dir).resolve()
    for n, entry in enumerate(properties[data_list_key]):
        _check_entry(dataset_json, data_list_key, n, entry, properties[data_list_key][0])
        outside = _outside(root, entry)
        if outside:
            raise ValueError(
                f"{dataset_json}: '{data_list_key}' entry {n} {entry!r} points outside the data set folder {root} "
                f"({outside}); its paths must be relative to that folder and stay inside it."
            )
    labels = properties.get("labels")
    expected_labels = [str(c) for c in range(num_classes or 0)]
    if num_classes is not None and (not isinstance(labels, dict) or sorted(labels) != sorted(expected_labels)):
        raise ValueError(
            f"{dataset_json} lists labels {labels}, expected num_classes={num_classes} classes named by the keys "
            f"{expected_labels}."
        )
    datalist = load_decathlon_datalist(dataset_json, data_list_key=data_list_key, base_dir=Path(dataset_dir).resolve())

    is_labelled = data_list_key != "test"
    for item in datalist:
        opened = [_open_nifti(path, "image", read_data, dataset_json) for path in _files(item["image"])]
        images = [img for img, _ in opened]
        image_path = _files(item["image"])[0]
        for path, img in zip(_files(item["image"]), images):
            _check_rank(path, "image", tuple(img.shape), channels_last=len(images) == 1)
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
        label_path = str(item["label"])
        label, label_data = _open_nifti(label_path, "label", read_data, dataset_json)
        # A 4D label with a singleton last axis is the same map; anything else is not a label map of this image.
        label_shape = tuple(label.shape[:3]) if label.shape[3:] in ((), (1,)) else tuple(label.shape)
        if label_shape != spatial:
            raise ValueError(
                f"label file {label_path} has shape {tuple(label.shape)}, expected the spatial shape {spatial} "
                f"of its image {image_path}."
            )
        _check_affines(f"label file {label_path}", f"its image {image_path}", label, images[0], affine_tol)
        if label_data is not None and num_classes is not None:
            values = np.unique(label_data)
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
        img, _ = _open_nifti(str(path), "image", read_data)
        _check_rank(str(path), "image", tuple(img.shape), channels_last=True)
        channels = img.shape[3] if len(img.shape) == 4 else 1
        if in_channels is not None and channels != in_channels:
            raise ValueError(f"image file {path} has {channels} channel(s), expected in_channels={in_channels}.")
    return [{"image": str(path.resolve())} for path in paths]
