"""
2D segmentation data: checked data lists for any ``images/`` + ``masks/`` folder (ISIC, HC18, ...; the
mask name is a pattern) and the PH2 layout, the channel count a network for them takes, and the head
circumferences of an HC18-style ``labels.csv``.
"""

from __future__ import annotations

import csv
import os
import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path

from monai.utils import look_up_option

from monai_srb.data.image_checks import (
    IMAGE_SUFFIXES,
    first_image_channels,
    folder_images,
    image_channels,
    image_size,
    list_images,
    mask_size,
)

__all__ = [
    "DEFAULT_MASK_PATTERN",
    "LAYOUTS",
    "dataset_image_channels",
    "folder_image_channels",
    "load_head_circumferences",
    "load_skin_lesion_data",
    "load_skin_lesion_images",
]

# Mask file name of image ``<id>.<suffix>`` in an images/ + masks/ folder: ISIC's; HC18's is "{id}_mask.png".
DEFAULT_MASK_PATTERN = "{id}_segmentation.png"
# The data set layouts load_skin_lesion_data reads ("isic" is "folder" with ISIC's mask names).
LAYOUTS = ("auto", "folder", "isic", "ph2")


def _checked_pair(image: Path, mask: Path) -> dict[str, str]:
    size = image_size(image, "image")
    found = mask_size(mask, image)
    if found != size:
        raise ValueError(
            f"mask {mask} is {found[0]}x{found[1]} (width x height), expected the size "
            f"{size[0]}x{size[1]} of its image {image}."
        )
    return {"image": str(image), "label": str(mask)}


def _folder_pairs(root: Path, mask_pattern: str) -> list[tuple[Path, Path]]:
    images_dir, masks_dir = root / "images", root / "masks"
    if not masks_dir.is_dir():
        raise ValueError(f"images/ + masks/ layout: mask folder {masks_dir} does not exist.")
    images = list_images(images_dir)
    if not images:
        raise ValueError(
            f"images/ + masks/ layout: image folder {images_dir} holds no {'/'.join(IMAGE_SUFFIXES)} images."
        )
    pairs = [(p, masks_dir / mask_pattern.format(id=p.stem)) for p in images]
    if not any(mask.is_file() for _, mask in pairs):
        # Not one missing mask but a pattern that matches none: name the pattern and what the folder holds.
        found = sorted(p.name for p in masks_dir.iterdir())[:3]
        raise ValueError(
            f"no mask in {masks_dir} matches mask_pattern {mask_pattern!r} (image {images[0].name} needs "
            f"{pairs[0][1].name}); the folder holds {found or 'nothing'}."
        )
    orphans = _masks_without_images(masks_dir, mask_pattern, {mask for _, mask in pairs})
    if orphans:
        # A mask whose image is gone is an image lost from the data set (or one of another suffix): refused, as
        # a missing mask is, rather than trained without.
        raise ValueError(
            f"{len(orphans)} mask(s) in {masks_dir} have no image in {images_dir} (first: {orphans[:3]}); each "
            f"mask {mask_pattern!r} needs its image <id>{'/'.join(IMAGE_SUFFIXES)}: restore the image or remove "
            "the mask."
        )
    return pairs


def _masks_without_images(masks_dir: Path, mask_pattern: str, expected: set[Path]) -> list[str]:
    """The files of ``masks_dir`` that ``mask_pattern`` matches but no image of ``expected`` names."""
    parts = string.Formatter().parse(mask_pattern)
    pattern = re.compile("".join(re.escape(text) + (".+" if field is not None else "") for text, field, _, _ in parts))
    files = (p for p in masks_dir.rglob("*") if p.is_file())
    return sorted(p.relative_to(masks_dir).as_posix() for p in files
                  if pattern.fullmatch(p.relative_to(masks_dir).as_posix()) and p not in expected)


def _ph2_pairs(root: Path) -> list[tuple[Path, Path]]:
    cases = sorted(p for p in root.iterdir() if p.is_dir() and (p / f"{p.name}_Dermoscopic_Image").is_dir())
    if not cases:
        raise ValueError(f"PH2 layout: {root} holds no <case>/<case>_Dermoscopic_Image folders.")
    pairs = []
    for case in cases:
        image_dir = case / f"{case.name}_Dermoscopic_Image"
        image = image_dir / f"{case.name}.bmp"
        if not image.is_file():
            found = list_images(image_dir)
            if len(found) != 1:
                raise ValueError(
                    f"PH2 layout: {image_dir} must hold the image {image.name}, found {[p.name for p in found]}."
                )
            image = found[0]
        pairs.append((image, case / f"{case.name}_lesion" / f"{case.name}_lesion.bmp"))
    return pairs


def _pairs(dataset_dir: str | os.PathLike, layout: str, mask_pattern: str) -> list[tuple[Path, Path]]:
    """The (image, mask) paths of a data set folder, listed but not opened; checks as :func:`load_skin_lesion_data`."""
    layout = look_up_option(layout, LAYOUTS)
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(mask_pattern) if name is not None}
    except ValueError:  # an unmatched brace
        fields = set()
    if fields != {"id"}:
        raise ValueError(
            f"mask_pattern must hold the field {{id}} and no other, e.g. '{{id}}_mask.png', got {mask_pattern!r}."
        )
    root = Path(dataset_dir).resolve()
    if not root.is_dir():
        raise ValueError(f"dataset_dir {root} is not a folder.")
    if layout == "auto":
        is_ph2 = any((p / f"{p.name}_Dermoscopic_Image").is_dir() for p in root.iterdir() if p.is_dir())
        if not (root / "images").is_dir() and not is_ph2:
            found = sorted(p.name for p in root.iterdir())[:5]
            raise ValueError(
                f"dataset_dir {root} holds neither an images/ + masks/ folder pair nor PH2 case folders "
                f"(<case>/<case>_Dermoscopic_Image); it holds {found or 'nothing'}."
            )
        layout = "folder" if (root / "images").is_dir() else "ph2"
    return _ph2_pairs(root) if layout == "ph2" else _folder_pairs(root, mask_pattern)


def load_skin_lesion_data(
    dataset_dir: str | os.PathLike,
    layout: str = "auto",
    mask_pattern: str = DEFAULT_MASK_PATTERN,
    in_channels: int | None = None,
) -> list[dict[str, str]]:
    """
    List the image / mask pairs of a 2D segmentation data set and check every pair, so that bad data
    stops a run while its data list is built, not in the middle of training.

    Layouts:

    - ``"folder"``: any ``images/<id>.<suffix>`` (``.jpg``, ``.jpeg``, ``.png``, ``.bmp``) with its mask
      ``masks/<mask_pattern with {id}>``: ISIC 2017/2018 (``{id}_segmentation.png``, the default), HC18
      (``{id}_mask.png``). ``"isic"`` is the same layout.
    - ``"ph2"``: ``<case>/<case>_Dermoscopic_Image/<case>.bmp`` and ``<case>/<case>_lesion/<case>_lesion.bmp``
      (``mask_pattern`` unused).
    - ``"auto"``: ``"folder"`` when ``dataset_dir/images`` exists, else ``"ph2"``.

    Checks: the folder exists and holds at least one image; ``mask_pattern`` matches at least one mask;
    every image has its mask and every mask (a file of ``masks/`` that ``mask_pattern`` matches) its image;
    image and mask decode completely (a truncated file fails) and have the same width and height; every
    image has 8 bits per channel and no transparent pixel (:func:`~monai_srb.data.image_checks.image_size`);
    every mask is binary, 0 / 255 or 0 / 1 (:func:`~monai_srb.data.image_checks.mask_size`: 0 / 128 / 255
    is refused); every image has the channel count of :func:`image_channels` (``in_channels``, or the first
    image's: a folder mixing grayscale and colour images is refused).

    Args:
        dataset_dir: the data set folder.
        layout: ``"auto"``, ``"folder"``, ``"isic"`` or ``"ph2"``.
        mask_pattern: the mask file name of image ``<id>.<suffix>``, a format string with the field ``{id}``.
        in_channels: the channel count every image must be read with, 1 or 3; ``None``: the first image's.

    Returns:
        ``[{"image": path, "label": path}, ...]`` with absolute paths, sorted by image name.

    Raises:
        ValueError: naming the folder, file or pattern at fault for each failed check, an unknown ``layout``
            or a ``mask_pattern`` without ``{id}``.
    """
    datalist = [_checked_pair(image, mask) for image, mask in _pairs(dataset_dir, layout, mask_pattern)]
    image_channels(datalist, in_channels)
    return datalist


def dataset_image_channels(
    dataset_dir: str | os.PathLike | None,
    in_channels: int | None = None,
    layout: str = "auto",
    mask_pattern: str = DEFAULT_MASK_PATTERN,
) -> int:
    """
    The channel count a network for a data set takes, without reading the data set: ``in_channels`` when
    given, 3 for the synthetic set (``dataset_dir`` ``None``: :func:`make_synthetic_skin_lesions` writes RGB),
    else that of the first image listed. Building a bundle's ``network_def`` thus opens one file at most;
    :func:`load_skin_lesion_data` checks that every image agrees when the data list is built.

    Args:
        dataset_dir: the data set folder, or ``None`` for the synthetic set.
        in_channels: 1 (grayscale), 3 (RGB) or ``None`` (from the data).
        layout: as :func:`load_skin_lesion_data`.
        mask_pattern: as :func:`load_skin_lesion_data`.

    Raises:
        ValueError: for an ``in_channels`` other than ``None``, 1 or 3, or as :func:`load_skin_lesion_data`
            when the folder lists no image.
    """
    first_image = None if dataset_dir is None else lambda: _pairs(dataset_dir, layout, mask_pattern)[0][0]
    return first_image_channels(in_channels, first_image)


def load_head_circumferences(
    dataset_dir: str | os.PathLike, datalist: Sequence[Mapping[str, str]], labels_file: str = "labels.csv"
) -> dict[str, tuple[float, float]]:
    """
    The reference head circumferences of an HC18-style data set: ``<dataset_dir>/labels.csv`` with the
    columns ``image_id`` (the image's file name without suffix), ``pixel_size_mm`` and
    ``head_circumference_mm``, for the images of ``datalist``.

    Args:
        dataset_dir: the data set folder.
        datalist: ``[{"image": path, "label": path}, ...]`` from :func:`load_skin_lesion_data`.
        labels_file: the CSV's name inside ``dataset_dir``.

    Returns:
        ``{mask path: (pixel_size_mm, head_circumference_mm)}`` for every item of ``datalist``, keyed by the
        mask (the metric sees the label's file name); ``{}`` when the folder has no such file or its file
        has neither size column (e.g. ISIC's ``labels.csv`` of diagnoses).

    Raises:
        ValueError: naming the file when it has one size column but lacks another, holds a value that is not
            a positive number, or has no row for an image of ``datalist``.
    """
    path = Path(dataset_dir) / labels_file
    if not path.is_file():
        return {}
    columns = ("image_id", "pixel_size_mm", "head_circumference_mm")
    with open(path, newline="", encoding="utf-8-sig") as f:  # a BOM (Excel) would rename image_id
        reader = csv.DictReader(f)
        present = reader.fieldnames or []
        if not any(c in present for c in columns[1:]):
            return {}  # another data set's labels (ISIC's labels.csv holds diagnoses)
        missing = [c for c in columns if c not in present]
        if missing:
            raise ValueError(
                f"{path} lacks the column(s) {missing}; expected {list(columns)}, got {reader.fieldnames}."
            )
        rows: dict[str, tuple[float, float]] = {}
        for row in reader:
            try:
                values = float(row["pixel_size_mm"]), float(row["head_circumference_mm"])
            except ValueError as e:
                raise ValueError(f"{path}: row of {row['image_id']!r} holds a value that is not a number: {e}") from e
            if min(values) <= 0:
                raise ValueError(f"{path}: row of {row['image_id']!r} needs positive sizes, got {values}.")
            rows[row["image_id"]] = values
    reference = {}
    for item in datalist:
        image_id = Path(item["image"]).stem
        if image_id not in rows:
            raise ValueError(f"{path} has no row for image {item['image']} (image_id {image_id!r}).")
        reference[str(item["label"])] = rows[image_id]
    return reference


def load_skin_lesion_images(folder: str | os.PathLike, in_channels: int | None = None) -> list[dict[str, str]]:
    """
    List and check the images (``.jpg``, ``.jpeg``, ``.png``, ``.bmp``) directly inside ``folder``, for
    inference on unlabelled images.

    Args:
        folder: the image folder.
        in_channels: the channel count every image must be read with, 1 or 3; ``None``: the first image's.

    Returns:
        ``[{"image": path}, ...]`` with absolute paths, sorted by name.

    Raises:
        ValueError: when ``folder`` is not a folder, holds no image, an image does not decode, or an image's
            channel count differs (see :func:`image_channels`).
    """
    images = folder_images(folder)
    for image in images:
        image_size(image, "image")
    datalist = [{"image": str(image)} for image in images]
    image_channels(datalist, in_channels)
    return datalist


def folder_image_channels(folder: str | os.PathLike | None, in_channels: int | None = None) -> int:
    """
    The channel count a network for the images of ``folder`` takes, reading the first image only:
    ``in_channels`` when given, 3 for ``None`` (the synthetic set, RGB). :func:`load_skin_lesion_images`
    checks that every image agrees.

    Args:
        folder: an image folder, or ``None`` for the synthetic set.
        in_channels: 1 (grayscale), 3 (RGB) or ``None`` (from the first image).

    Raises:
        ValueError: for an ``in_channels`` other than ``None``, 1 or 3, or as :func:`load_skin_lesion_images`
            when ``folder`` is not a folder or holds no image.
    """
    return first_image_channels(in_channels, None if folder is None else lambda: folder_images(folder)[0])
