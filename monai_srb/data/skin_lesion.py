"""
2D segmentation data: checked data lists for any ``images/`` + ``masks/`` folder (ISIC, HC18, ...; the
mask name is a pattern) and the PH2 layout, the channel count of the images, the head circumferences of
an HC18-style ``labels.csv``, and a synthetic ISIC-format data set in which a pixel's class is decided
far from it.
"""

from __future__ import annotations

import csv
import os
import string
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "DEFAULT_MASK_PATTERN",
    "IMAGE_SUFFIXES",
    "dataset_image_channels",
    "folder_image_channels",
    "image_channels",
    "load_head_circumferences",
    "load_skin_lesion_data",
    "load_skin_lesion_images",
    "make_synthetic_skin_lesions",
]

# Suffixes read as images (ISIC ships JPEG, PH2 BMP, HC18 PNG); matched case-insensitively.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# Mask file name of image ``<id>.<suffix>`` in an images/ + masks/ folder: ISIC's; HC18's is "{id}_mask.png".
DEFAULT_MASK_PATTERN = "{id}_segmentation.png"
# PIL modes read as one channel; every other mode (RGB, RGBA, P, CMYK, ...) is read as RGB.
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def _image_size(path: Path, what: str) -> tuple[int, int]:
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist.")
    try:
        with Image.open(path) as img:
            # A truncated JPEG has a valid header; only decoding the pixels finds it.
            img.load()
            return img.size
    except Exception as e:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ... for bad files
        raise ValueError(f"{what} {path} cannot be read as an image: {e}") from e


def _checked_pair(image: Path, mask: Path) -> dict[str, str]:
    size = _image_size(image, "image")
    mask_size = _image_size(mask, f"mask of image {image.name}:")
    if mask_size != size:
        raise ValueError(
            f"mask {mask} is {mask_size[0]}x{mask_size[1]} (width x height), expected the size "
            f"{size[0]}x{size[1]} of its image {image}."
        )
    return {"image": str(image), "label": str(mask)}


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _folder_pairs(root: Path, mask_pattern: str) -> list[tuple[Path, Path]]:
    images_dir, masks_dir = root / "images", root / "masks"
    if not masks_dir.is_dir():
        raise ValueError(f"images/ + masks/ layout: mask folder {masks_dir} does not exist.")
    images = _images_in(images_dir)
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
    return pairs


def _ph2_pairs(root: Path) -> list[tuple[Path, Path]]:
    cases = sorted(p for p in root.iterdir() if p.is_dir() and (p / f"{p.name}_Dermoscopic_Image").is_dir())
    if not cases:
        raise ValueError(f"PH2 layout: {root} holds no <case>/<case>_Dermoscopic_Image folders.")
    pairs = []
    for case in cases:
        image_dir = case / f"{case.name}_Dermoscopic_Image"
        image = image_dir / f"{case.name}.bmp"
        if not image.is_file():
            found = _images_in(image_dir)
            if len(found) != 1:
                raise ValueError(
                    f"PH2 layout: {image_dir} must hold the image {image.name}, found {[p.name for p in found]}."
                )
            image = found[0]
        pairs.append((image, case / f"{case.name}_lesion" / f"{case.name}_lesion.bmp"))
    return pairs


def _pairs(dataset_dir: str | os.PathLike, layout: str, mask_pattern: str) -> list[tuple[Path, Path]]:
    """The (image, mask) paths of a data set folder, listed but not opened; checks as :func:`load_skin_lesion_data`."""
    if layout not in ("auto", "folder", "isic", "ph2"):
        raise ValueError(f"layout must be 'auto', 'folder', 'isic' or 'ph2', got {layout!r}.")
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
    every image has its mask; image and mask decode completely (a truncated file fails) and have the same
    width and height; every image has the channel count of :func:`image_channels` (``in_channels``, or the
    first image's).

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
    return _first_image_channels(in_channels, first_image)


def _check_in_channels(in_channels: int | None) -> None:
    if in_channels not in (None, 1, 3):
        raise ValueError(f"in_channels must be null (from the data), 1 (grayscale) or 3 (RGB), got {in_channels!r}.")


def _first_image_channels(in_channels: int | None, first_image: Callable[[], Path] | None) -> int:
    """``in_channels`` when given, else 3 without a data set (the synthetic set is RGB), else the first image's."""
    _check_in_channels(in_channels)
    if in_channels is not None:
        return int(in_channels)
    if first_image is None:
        return 3
    return image_channels([{"image": str(first_image())}])


def image_channels(datalist: Sequence[Mapping[str, str]], in_channels: int | None = None) -> int:
    """
    The channel count the images of a data list are read with: 1 for grayscale files (PIL modes ``1``,
    ``L``, ``LA``, ``I``, ``F``; an alpha channel is dropped), 3 for every other mode (read as RGB). All
    images must agree, and agree with ``in_channels`` when it is given.

    Args:
        datalist: items with an ``"image"`` path, e.g. from :func:`load_skin_lesion_data`.
        in_channels: the expected count, 1 or 3; ``None``: take it from the first image.

    Returns:
        1 or 3.

    Raises:
        ValueError: when ``in_channels`` is not ``None``, 1 or 3, when ``datalist`` is empty, or naming the
            first image whose channel count differs from ``in_channels`` (or from the first image's).
    """
    _check_in_channels(in_channels)
    if not datalist:
        raise ValueError("cannot read the channel count of an empty data list.")
    expected, source = in_channels, "in_channels"
    for item in datalist:
        with Image.open(item["image"]) as img:
            channels = 1 if img.mode in _GRAY_MODES else 3
        if expected is None:
            expected, source = channels, f"the first image {item['image']}"
        elif channels != expected:
            raise ValueError(
                f"image {item['image']} has {channels} channel(s) ({'grayscale' if channels == 1 else 'colour'}), "
                f"expected {expected} as {source} has."
            )
    return int(expected)


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


def _folder_images(folder: str | os.PathLike) -> list[Path]:
    root = Path(folder).resolve()
    if not root.is_dir():
        raise ValueError(f"image folder {root} is not a folder.")
    images = _images_in(root)
    if not images:
        raise ValueError(f"image folder {root} holds no {'/'.join(IMAGE_SUFFIXES)} images.")
    return images


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
    images = _folder_images(folder)
    for image in images:
        _image_size(image, "image")
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
    return _first_image_channels(in_channels, None if folder is None else lambda: _folder_images(folder)[0])


def _border_distance(
    rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    # A random border r(theta) = radius + sum_k a_k cos(k theta + phi_k), k = 2..5, a_k up to 7% of the
    # radius: irregular like a naevus's, and still crossed once by every ray from the centre, so the
    # radial distance to it is negative exactly inside.
    k = np.arange(2, 6)[:, None, None]
    amplitudes, phases = radius * rng.uniform(0.0, 0.07, (4, 1, 1)), rng.uniform(0, 2 * np.pi, (4, 1, 1))
    theta = np.arctan2(yy - cy, xx - cx)
    border = radius + (amplitudes * np.cos(k * theta[None] + phases)).sum(0)
    return np.hypot(xx - cx, yy - cy) - border, theta


def _synthetic_case(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    side = float(min(height, width))

    # Skin: a tone, a light gradient and vignette, and soft pigmented blotches of the lesions' own hue,
    # as dark as a faint lesion's inside, so that neither the brightness nor the colour of a
    # neighbourhood tells lesion from skin.
    skin = rng.uniform([0.78, 0.55, 0.45], [0.92, 0.70, 0.60]).astype(np.float32)
    gx, gy = rng.uniform(-0.06, 0.06, 2)
    r2 = ((xx - width / 2) ** 2 + (yy - height / 2) ** 2) / (side / 2) ** 2
    shade = 1.0 + gx * (xx / width - 0.5) + gy * (yy / height - 0.5) - 0.08 * r2
    blotches = np.zeros((height, width), np.float32)
    for _ in range(int(rng.integers(4, 9))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        sigma = rng.uniform(0.06, 0.14) * side
        blotches += rng.uniform(-0.05, 0.1) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))

    rim_width = max(1.5, 0.03 * side)
    if rng.random() < 0.65:
        # A large faint lesion: its inside is a few percent darker than skin, within the blotches' range;
        # only its dark border, up to a third of the short side away, marks an inside pixel as lesion.
        radius = rng.uniform(0.22, 0.34) * side
        inside_dark, rim_dark = rng.uniform(0.05, 0.1), rng.uniform(0.25, 0.4)
    else:
        # A small compact lesion, dark throughout: the easy, local case.
        radius = rng.uniform(0.06, 0.12) * side
        inside_dark, rim_dark = rng.uniform(0.35, 0.5), rng.uniform(0.4, 0.55)
    margin = radius * 1.2 + 2
    cx, cy = rng.uniform(margin, max(margin + 1, width - margin)), rng.uniform(margin, max(margin + 1, height - margin))
    dist, _ = _border_distance(rng, xx, yy, cx, cy, radius)
    label = dist <= 0
    pigment = np.where(label, inside_dark, 0.0) + np.where(label & (dist > -rim_width), rim_dark - inside_dark, 0.0)

    if rng.random() < 0.6:
        # A decoy: an open arc drawn like a lesion border. Locally it is a border; only the whole
        # (it encloses nothing) shows that its side is skin.
        radius = rng.uniform(0.15, 0.3) * side
        dist, theta = _border_distance(rng, xx, yy, rng.uniform(0, width), rng.uniform(0, height), radius)
        start, span = rng.uniform(0, 2 * np.pi), rng.uniform(0.4, 0.7) * 2 * np.pi
        on_arc = (np.mod(theta - start, 2 * np.pi) < span) & (np.abs(dist) < rim_width / 2) & ~label
        pigment = np.where(on_arc, rim_dark, pigment)

    # Pigment darkens towards brown (red falls least), as melanin does.
    brown = np.array([0.55, 0.85, 1.0], np.float32)
    image = skin * shade[..., None] * (1.0 - np.clip(pigment + blotches, -0.1, 1.0)[..., None] * brown)
    image += rng.normal(0.0, 0.025, image.shape)
    image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return image, (label * 255).astype(np.uint8)


def _save_atomic(img: Image.Image, path: Path, **kwargs: Any) -> None:
    # Write then rename, so concurrent writers (DDP ranks) of the same deterministic file never expose a
    # half-written image to a reader.
    tmp = path.with_name(f".{os.getpid()}.{path.name}")
    img.save(tmp, format=kwargs.pop("format"), **kwargs)
    os.replace(tmp, path)


def make_synthetic_skin_lesions(
    root: str | os.PathLike, num_samples: int = 48, image_size: Sequence[int] | int = (96, 128), seed: int = 0
) -> str:
    """
    Write a synthetic dermoscopy data set in the ISIC layout (``images/synthetic_NNNN.jpg``, RGB JPEG;
    ``masks/synthetic_NNNN_segmentation.png``, 0/255 PNG), readable by :func:`load_skin_lesion_data`.

    Each image shows skin with uneven illumination and soft pigmented blotches, one lesion and, in 60% of the
    images, a decoy. In about two thirds of the images the lesion is large (radius 0.22-0.34 of the
    short side) with an inside only 5-10% darker than skin, within the range of the blotches, and a dark
    irregular border: an inside pixel is lesion because a border surrounds it, far away. The decoy is an
    open arc drawn like such a border, which encloses nothing. The other images hold a small dark lesion
    that a local filter finds.

    Image ``i`` depends only on ``(seed, i)``: a data set with more images starts with the same ones,
    and writing the same data set again (as every run, or every DDP rank, does) gives the same files.

    Args:
        root: output folder (created).
        num_samples: number of image / mask pairs.
        image_size: ``(height, width)`` of the images, or one int for square images; at least 16.
        seed: seed of the data set.

    Returns:
        ``root`` as a str, for use as a bundle's ``dataset_dir``.

    Raises:
        ValueError: when ``num_samples`` < 1 or a side of ``image_size`` is below 16.
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else (int(s) for s in image_size)
    if num_samples < 1 or min(height, width) < 16:
        raise ValueError(f"need num_samples >= 1 and image sides >= 16, got {num_samples} and {image_size}.")
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(num_samples):
        image, mask = _synthetic_case(np.random.default_rng([seed, i]), height, width)
        name = f"synthetic_{i:04d}"
        _save_atomic(Image.fromarray(image, "RGB"), root / "images" / f"{name}.jpg", format="JPEG", quality=95)
        _save_atomic(Image.fromarray(mask, "L"), root / "masks" / f"{name}_segmentation.png", format="PNG")
    return str(root)
