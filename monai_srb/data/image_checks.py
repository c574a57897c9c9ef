"""
Checks of 2D image files shared by the data lists (skin lesions, HC18, ChestX-ray14): which files count as
images, a folder of them, whether a file reads as the bundles read it (8 bits, opaque), whether a mask is binary,
and the channel count the images are read with.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from PIL import Image

__all__ = [
    "CHECK_IMAGES",
    "IMAGE_SUFFIXES",
    "MASK_VALUES",
    "check_in_channels",
    "first_image_channels",
    "folder_images",
    "image_channels",
    "image_size",
    "list_images",
    "mask_size",
]

# Suffixes read as images (ISIC ships JPEG, PH2 BMP, HC18 and ChestX-ray14 PNG); matched case-insensitively.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# How much of each image a data list reads before training: nothing, its header, or all its pixels.
CHECK_IMAGES = ("none", "header", "decode")
# PIL modes read as one channel; every other mode (RGB, RGBA, P, CMYK, ...) is read as RGB.
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
# PIL modes of more than 8 bits per pixel (16-bit PNGs open as I;16 or I): the bundles read images with
# convert("L" or "RGB"), which clips every value above 255 to 255, so such an image would train nearly white.
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
# The values a binary mask may hold once read as 8-bit grayscale (as the bundles read masks): ISIC's and HC18's
# 0 / 255, or 0 / 1. Anything else (0 / 128 / 255, JPEG noise, a coloured mask) would be thresholded at 1.
MASK_VALUES = ((0, 255), (0, 1))


def _open_checked(path: Path, what: str, decode: bool) -> Image.Image:
    """The image file, opened (and with ``decode`` decoded); the caller closes it."""
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist.")
    try:
        img = Image.open(path)
    except Exception as e:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ... for bad files
        raise ValueError(f"{what} {path} cannot be read as an image: {e}") from e
    try:
        if decode:
            img.load()
    except Exception as e:
        img.close()
        raise ValueError(f"{what} {path} cannot be read as an image: {e}") from e
    return img


def _check_depth_and_alpha(img: Image.Image, path: Path, what: str, decode: bool) -> None:
    if img.mode in _WIDE_MODES:
        raise ValueError(
            f"{what} {path} has more than 8 bits per pixel (PIL mode {img.mode!r}); it is read as 8-bit, which clips "
            "every value above 255 to 255: save it with 8 bits per channel (scaled to 0..255)."
        )
    if decode and (img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info):
        lowest = img.convert("RGBA").getchannel("A").getextrema()[0]
        if lowest < 255:
            # The alpha channel is dropped when read: the colour stored under a transparent pixel, which an
            # encoder may leave as anything, would be what the network sees.
            raise ValueError(
                f"{what} {path} has transparent pixels (alpha down to {lowest}), and the alpha channel is dropped "
                "when it is read: flatten it onto a background (or make it opaque) first."
            )


def image_size(path: str | os.PathLike, what: str = "image", decode: bool = True) -> tuple[int, int]:
    """
    The ``(width, height)`` of an image file, checked to read as the bundles read it: 8 bits per channel
    (a 16-bit image would be clipped at 255) and, when decoded, opaque (the alpha channel is dropped).

    Args:
        path: the image file.
        what: how the error names the file (``"image"``).
        decode: also decode the pixels (a truncated file has a valid header; only decoding finds it; the
            alpha check needs the pixels too); ``False`` reads the header only.

    Raises:
        ValueError: naming the file when it does not exist, cannot be read as an image, has more than 8 bits
            per channel (its PIL mode named) or, decoded, has transparent pixels.
    """
    path = Path(path)
    with _open_checked(path, what, decode) as img:
        _check_depth_and_alpha(img, path, what, decode)
        return img.size


def mask_size(path: str | os.PathLike, image: str | os.PathLike) -> tuple[int, int]:
    """
    The ``(width, height)`` of a binary mask file, decoded and checked to hold, once read as 8-bit grayscale
    (as the bundles read masks), only the values of one of :data:`MASK_VALUES`: 0 and 255, or 0 and 1
    (an empty or a full mask holds one of them only).

    Args:
        path: the mask file.
        image: its image, for the error message.

    Raises:
        ValueError: naming the mask when it does not exist or cannot be read, or naming it with the values
            it holds (and its PIL mode) when they are not binary.
    """
    path = Path(path)
    with _open_checked(path, f"mask of image {Path(image).name}:", decode=True) as img:
        histogram = img.convert("L").histogram()
        values = [v for v, count in enumerate(histogram) if count]
        if not any(set(values) <= set(allowed) for allowed in MASK_VALUES):
            shown = str(values) if len(values) <= 8 else f"{values[:8]} ... ({len(values)} values)"
            raise ValueError(
                f"mask {path} of image {image} holds the values {shown} (PIL mode {img.mode!r}, read as 8-bit "
                "grayscale), expected a binary mask of 0 and 255, or of 0 and 1."
            )
        return img.size


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The files with an image suffix (:data:`IMAGE_SUFFIXES`) directly inside ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def folder_images(folder: str | os.PathLike) -> list[Path]:
    """
    The images directly inside ``folder`` (:func:`list_images`), as absolute paths, for inference on
    unlabelled images; none is opened.

    Raises:
        ValueError: naming the folder when it is not a folder or holds no image.
    """
    root = Path(folder).resolve()
    if not root.is_dir():
        raise ValueError(f"image folder {root} is not a folder.")
    images = list_images(root)
    if not images:
        raise ValueError(f"image folder {root} holds no {'/'.join(IMAGE_SUFFIXES)} images.")
    return images


def check_in_channels(in_channels: int | None) -> None:
    """
    Raises:
        ValueError: when ``in_channels`` is not ``None`` (from the data), 1 or 3.
    """
    if in_channels not in (None, 1, 3):
        raise ValueError(f"in_channels must be null (from the data), 1 (grayscale) or 3 (RGB), got {in_channels!r}.")


def first_image_channels(in_channels: int | None, first_image: Callable[[], Path] | None) -> int:
    """
    The channel count a network takes: ``in_channels`` when given, else 3 without a data set (the synthetic
    sets are RGB), else that of the image ``first_image()`` returns (called only then, so a data set is
    listed only when its images decide).

    Raises:
        ValueError: as :func:`check_in_channels`.
    """
    check_in_channels(in_channels)
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
        datalist: items with an ``"image"`` path, e.g. from :func:`monai_srb.data.load_skin_lesion_data`.
        in_channels: the expected count, 1 or 3; ``None``: take it from the first image.

    Returns:
        1 or 3.

    Raises:
        ValueError: when ``in_channels`` is not ``None``, 1 or 3, when ``datalist`` is empty, or naming the
            first image whose channel count differs from ``in_channels`` (or from the first image's).
    """
    check_in_channels(in_channels)
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
