"""
Deterministic synthetic data sets, written in the on-disk format of the real ones so that the real loading
path runs, each with a task only long-range context solves: ChestX-ray14 (findings marked by a cue on both
sides of the midline), ISIC skin lesions (a faint lesion told by its distant border) and a Medical
Segmentation Decathlon task (bright spheres that are lesions only inside a faint organ).

Item ``i`` of every set depends only on ``(seed, i)``: a set with more items starts with the same ones.

Each set is written with a manifest, ``synthetic_manifest.json``: the generator's arguments and the size of every
file it wrote. A call finding a manifest with its own arguments and every file in place writes nothing (every run of
a bundle calls its generator); any other call first removes the set's files (the manifest first, so that a build
killed half-way is rebuilt), so that no image of a set with other arguments survives beside the new ones, where a
loader reading the whole folder would train on it. One process writes a set at a time: under DDP the main process
(:func:`monai_srb.bundle.data.resolve_data_root`).
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from PIL import Image

from monai_srb.data.chestxray14 import CHESTXRAY14_CLASSES, CHESTXRAY14_HEADER, NO_FINDING
from monai_srb.utils.sizes import check_min_size, check_multiple_of, check_positive_int, check_spatial_size

__all__ = [
    "SYNTHETIC_LABELS",
    "SYNTHETIC_MANIFEST",
    "make_synthetic_decathlon",
    "make_synthetic_skin_lesions",
    "write_synthetic_chestxray14",
]

logger = logging.getLogger(__name__)

# Class names of the synthetic Decathlon set, in the dataset.json ``labels`` layout.
SYNTHETIC_LABELS = {"0": "background", "1": "organ", "2": "lesion"}
# The file beside each set naming the arguments it was written with (not a dot file: the tests check that no
# temporary ``.<pid>.<name>`` file is left behind).
SYNTHETIC_MANIFEST = "synthetic_manifest.json"
# Part of every manifest: raised whenever a generator writes other files for the same arguments, so that the sets
# an older version wrote are rebuilt.
_FORMAT_VERSION = 1


def _write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    # Write then rename, so concurrent writers (DDP ranks) of the same deterministic file never expose a
    # half-written file to a reader.
    tmp = path.with_name(f".{os.getpid()}.{path.name}")
    write(tmp)
    os.replace(tmp, path)


def _plain(params: Mapping[str, object]) -> dict[str, object]:
    # As the manifest reads back (tuples become lists, NumPy scalars numbers), so that a set's arguments compare
    # equal to its manifest's.
    return json.loads(json.dumps(dict(params), default=lambda v: v.item() if isinstance(v, np.generic) else str(v)))


def _file_sizes(root: Path, files: Sequence[str]) -> dict[str, int]:
    return {name: (root / name).stat().st_size for name in files}


def _read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest in ``root``, ``None`` when there is none or it is unreadable."""
    try:
        manifest = json.loads((root / SYNTHETIC_MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _is_current(root: Path, manifest: Mapping[str, Any] | None, params: Mapping[str, object]) -> bool:
    """Whether ``root`` holds a set written with ``params``: its manifest says so, every file it lists has its size."""
    if manifest is None:
        return False
    try:
        files = manifest["files"]
        return manifest["params"] == params and bool(files) and _file_sizes(root, list(files)) == files
    except (OSError, KeyError, TypeError):  # a manifest without these keys, a listed file gone
        return False


def _synthetic_set(
    root: Path,
    params: Mapping[str, object],
    owned: Sequence[tuple[str, str]],
    write: Callable[[], Sequence[str]],
) -> str:
    """
    Write a synthetic set unless ``root`` already holds it; returns ``root`` as a str.

    Args:
        root: the set's folder.
        params: the generator's arguments, with its ``kind`` and ``format_version``; stored in the manifest.
        owned: ``(subfolder, regular expression)`` of the files the generator writes, removed before a rebuild
            with the temporary files of an interrupted write (``.<pid>.<name>``); other files are left alone.
        write: writes the set, returning the paths it wrote relative to ``root``.
    """
    params = _plain(params)
    manifest = root / SYNTHETIC_MANIFEST
    found = _read_manifest(root)
    if _is_current(root, found, params):
        logger.info("synthetic set %s is up to date (%s): not rewritten", root, params)
        return str(root)
    old = None if found is None else found.get("params")
    manifest.unlink(missing_ok=True)
    removed = 0
    for folder, pattern in owned:
        name = re.compile(rf"(\.\d+\.)?(?:{pattern})")
        if (root / folder).is_dir():
            for entry in (root / folder).iterdir():
                if entry.is_file() and name.fullmatch(entry.name):
                    entry.unlink()
                    removed += 1
    if removed:
        logger.info("synthetic set %s: removed %d files of an earlier set (%s) before writing %s", root, removed,
                    old or "no manifest, or files missing", params)
    files = list(write())
    content = json.dumps({"params": params, "files": _file_sizes(root, files)}, indent=4, sort_keys=True)
    _write_atomic(manifest, lambda tmp: tmp.write_text(content + "\n"))
    return str(root)


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
        output_dir: the folder to write (created). A set written there with other arguments is replaced: its
            table, boxes and images are removed first.
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
    check_positive_int(image_size, "image_size")
    check_multiple_of(image_size, 8, "image_size", "an 8 x 8 grid of cells of whole pixels")
    check_min_size(image_size, 32, "image_size", "grid cells of at least 4 pixels")
    params = {
        "kind": "chestxray14", "format_version": _FORMAT_VERSION, "num_samples": num_samples,
        "image_size": image_size, "seed": seed, "positive_rate": positive_rate, "decoy_rate": decoy_rate,
    }
    owned = [("images", r"\d{8}_\d{3}\.png"), (".", r"Data_Entry_2017\.csv|BBox_List_2017\.csv")]
    root = Path(output_dir)
    return _synthetic_set(
        root, params, owned,
        lambda: _write_chestxray14(root, num_samples, image_size, seed, positive_rate, decoy_rate),
    )


def _write_chestxray14(
    root: Path, num_samples: int, image_size: int, seed: int, positive_rate: float, decoy_rate: float
) -> list[str]:
    """The files of :func:`write_synthetic_chestxray14`, written into ``root``; returns their paths in ``root``."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    codes = _cue_codes(len(CHESTXRAY14_CLASSES))
    cell = image_size // 8
    bit = max(1, cell // 5)  # leaves a margin between cues in neighbouring cells from 64 pixels up
    yy, xx = np.mgrid[0:image_size, 0:image_size] / image_size
    body = ((xx - 0.5) / 0.46) ** 2 + ((yy - 0.55) / 0.5) ** 2 < 1.0
    lungs = (((np.abs(xx - 0.5) - 0.2) / 0.14) ** 2 + ((yy - 0.5) / 0.3) ** 2) < 1.0
    background = 40.0 + 90.0 * body - 45.0 * lungs

    out, boxes = io.StringIO(), io.StringIO()
    files = ["Data_Entry_2017.csv", "BBox_List_2017.csv"]
    out.write(CHESTXRAY14_HEADER + "\n")
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
        files.append(f"images/{name}")
        labels = "|".join(findings) or NO_FINDING
        age, gender = 20 + (patient * 7) % 60, "MF"[patient % 2]
        out.write(f"{name},{labels},{follow_up},{patient},{age},{gender},PA,{image_size},{image_size},0.143,0.143\n")
        follow_up += 1
    (root / "Data_Entry_2017.csv").write_text(out.getvalue())
    (root / "BBox_List_2017.csv").write_text(boxes.getvalue())
    return files


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


def make_synthetic_skin_lesions(
    root: str | os.PathLike, num_samples: int = 48, image_size: Sequence[int] | int = (96, 128), seed: int = 0
) -> str:
    """
    Write a synthetic dermoscopy data set in the ISIC layout (``images/synthetic_NNNN.jpg``, RGB JPEG;
    ``masks/synthetic_NNNN_segmentation.png``, 0/255 PNG), readable by :func:`monai_srb.data.load_skin_lesion_data`.

    Each image shows skin with uneven illumination and soft pigmented blotches, one lesion and, in 60% of the
    images, a decoy. In about two thirds of the images the lesion is large (radius 0.22-0.34 of the
    short side) with an inside only 5-10% darker than skin, within the range of the blotches, and a dark
    irregular border: an inside pixel is lesion because a border surrounds it, far away. The decoy is an
    open arc drawn like such a border, which encloses nothing. The other images hold a small dark lesion
    that a local filter finds.

    Image ``i`` depends only on ``(seed, i)``: a data set with more images starts with the same ones.

    Args:
        root: output folder (created). A set written there with other arguments is replaced: its images and
            masks are removed first, so that a loader reading the whole folder finds this set only.
        num_samples: number of image / mask pairs.
        image_size: ``(height, width)`` of the images, or one int for square images; at least 16.
        seed: seed of the data set.

    Returns:
        ``root`` as a str, for use as a bundle's ``dataset_dir``.

    Raises:
        ValueError: when ``num_samples`` < 1, or ``image_size`` is not one or two positive ints of at least 16.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}.")
    height, width = check_spatial_size(image_size, 2, "image_size")
    check_min_size(image_size, 16, "image_size")
    params = {
        "kind": "skin_lesions", "format_version": _FORMAT_VERSION, "num_samples": num_samples,
        "image_size": [height, width], "seed": seed,
    }
    owned = [("images", r"synthetic_\d{4,}\.jpg"), ("masks", r"synthetic_\d{4,}_segmentation\.png")]
    root = Path(root)
    return _synthetic_set(root, params, owned, lambda: _write_skin_lesions(root, num_samples, height, width, seed))


def _write_skin_lesions(root: Path, num_samples: int, height: int, width: int, seed: int) -> list[str]:
    """The files of :func:`make_synthetic_skin_lesions`, written into ``root``; returns their paths in ``root``."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(num_samples):
        image, mask = _synthetic_case(np.random.default_rng([seed, i]), height, width)
        name = f"synthetic_{i:04d}"
        image_file, mask_file = f"images/{name}.jpg", f"masks/{name}_segmentation.png"
        _write_atomic(root / image_file, lambda tmp: Image.fromarray(image, "RGB").save(tmp, format="JPEG", quality=95))
        _write_atomic(root / mask_file, lambda tmp: Image.fromarray(mask, "L").save(tmp, format="PNG"))
        files += [image_file, mask_file]
    return files


def _save_nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    img = nib.Nifti1Image(array, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    _write_atomic(path, lambda tmp: nib.save(img, tmp))


def _synthetic_volume(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    shape = tuple(int(s) for s in rng.integers(size - size // 6, size + 1, 3))
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij"), axis=-1)

    # A large ellipsoid barely brighter than the noise: its voxels are told from background only by
    # pooling over a wide neighbourhood.
    centre = rng.uniform(0.4, 0.6, 3) * shape
    radii = rng.uniform(0.22, 0.3, 3) * min(shape)
    organ_dist = np.sqrt((((grid - centre) / radii) ** 2).sum(-1))
    organ = organ_dist <= 1.0

    # Bright spheres look alike wherever they are; one is a lesion only if it lies inside the organ, a
    # fact that sits many voxels away from the sphere's own edge.
    lesion = np.zeros(shape, bool)
    spots = np.zeros(shape, bool)
    for inside in [True] * int(rng.integers(1, 3)) + [False] * int(rng.integers(1, 3)):
        radius = rng.uniform(2.5, 3.5)
        if inside:
            # Uniform in the inner half of the organ, well clear of its edge.
            u = rng.standard_normal(3)
            c = centre + 0.55 * radii * u / np.linalg.norm(u) * rng.uniform() ** (1 / 3)
        else:
            for _ in range(100):
                c = rng.uniform(radius, np.array(shape) - radius)
                if np.sqrt((((c - centre) / radii) ** 2).sum()) > 1.0 + 2.0 * radius / radii.min():
                    break
            else:
                continue  # no room outside the organ in this volume
        sphere = np.sqrt(((grid - c) ** 2).sum(-1)) <= radius
        spots |= sphere
        if inside:
            lesion |= sphere

    signal = rng.standard_normal(shape).astype(np.float32) + 0.6 * organ
    # Spots take the same intensity inside and outside the organ, so their own voxels carry no class cue.
    signal[spots] = 2.5 + rng.standard_normal(int(spots.sum())).astype(np.float32)
    image = (100.0 + 20.0 * signal).astype(np.float32)
    label = np.where(lesion, 2, np.where(organ, 1, 0)).astype(np.uint8)

    # Typical scanner-exported NIfTI: anisotropic voxels, x and y flipped, a random origin.
    affine = np.diag([-1.5, -1.5, 2.0, 1.0])
    affine[:3, 3] = rng.uniform(-100.0, 100.0, 3)
    return image, label, affine


def make_synthetic_decathlon(
    root: str | os.PathLike, num_train: int = 8, num_test: int = 2, size: int = 48, seed: int = 0
) -> str:
    """
    Write a synthetic MSD-format data set (``imagesTr/``, ``labelsTr/``, ``imagesTs/``, ``dataset.json``)
    of single-channel float32 volumes, about ``size`` voxels per side (between ``size - size // 6`` and
    ``size``), with 1.5 x 1.5 x 2 mm voxels stored with flipped x and y axes and a random origin.

    Classes: 1 ``organ``, a large ellipsoid only 0.6 noise standard deviations brighter than background,
    and 2 ``lesion``, bright spheres inside the organ. Equally bright spheres outside the organ are
    background, so a sphere's class is decided by faint context many voxels away from it.

    Volume ``i`` depends only on ``(seed, i)``: a data set with more volumes starts with the same ones.

    Args:
        root: output folder (created). A set written there with other arguments is replaced: its volumes and
            ``dataset.json`` are removed first.
        num_train: labelled volumes (the ``training`` list).
        num_test: unlabelled volumes (the ``test`` list).
        size: largest side in voxels.
        seed: seed of the data set.

    Returns:
        ``root`` as a str, for use as a bundle's data folder.

    Raises:
        ValueError: when ``num_train`` < 1, ``num_test`` < 0 or ``size`` is not an int of at least 16.
    """
    if num_train < 1 or num_test < 0:
        raise ValueError(f"need num_train >= 1 and num_test >= 0, got {num_train} and {num_test}.")
    check_positive_int(size, "size")
    check_min_size(size, 16, "size")
    params = {
        "kind": "decathlon", "format_version": _FORMAT_VERSION, "num_train": num_train, "num_test": num_test,
        "size": size, "seed": seed,
    }
    volume = r"synthetic_\d{3,}\.nii\.gz"
    owned = [("imagesTr", volume), ("labelsTr", volume), ("imagesTs", volume), (".", r"dataset\.json")]
    root = Path(root)
    return _synthetic_set(root, params, owned, lambda: _write_decathlon(root, num_train, num_test, size, seed))


def _write_decathlon(root: Path, num_train: int, num_test: int, size: int, seed: int) -> list[str]:
    """The files of :func:`make_synthetic_decathlon`, written into ``root``; returns their paths in ``root``."""
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    training, test = [], []
    for i in range(num_train + num_test):
        image, label, affine = _synthetic_volume(np.random.default_rng([seed, i]), size)
        name = f"synthetic_{i:03d}.nii.gz"
        if i < num_train:
            _save_nifti(image, affine, root / "imagesTr" / name)
            _save_nifti(label, affine, root / "labelsTr" / name)
            training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
        else:
            _save_nifti(image, affine, root / "imagesTs" / name)
            test.append(f"./imagesTs/{name}")
    properties = {
        "name": "SyntheticOrganLesion",
        "description": "Faint large organ with bright lesions; equally bright spheres outside the organ are "
        "background",
        "reference": "monai_srb.data.make_synthetic_decathlon",
        "licence": "Apache-2.0",
        "release": f"seed {seed}",
        "tensorImageSize": "3D",
        "modality": {"0": "MRI"},
        "labels": SYNTHETIC_LABELS,
        "numTraining": num_train,
        "numTest": num_test,
        "training": training,
        "test": test,
    }
    _write_atomic(root / "dataset.json", lambda tmp: tmp.write_text(json.dumps(properties, indent=4)))
    volumes = [path[2:] for item in training for path in (item["image"], item["label"])] + [p[2:] for p in test]
    return ["dataset.json", *volumes]
