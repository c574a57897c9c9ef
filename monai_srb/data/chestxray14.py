"""
NIH ChestX-ray14 (Wang et al., CVPR 2017) in its official layout: the label table ``Data_Entry_2017*.csv``
(or ``.csv.gz``) and ``images/``, read into checked training and validation data lists (multi-label), split
at random by image (the paper's 4:1 split) or by patient.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.utils import look_up_option

from monai_srb.data.image_checks import CHECK_IMAGES, image_size
from monai_srb.data.split import patient_split, random_split

__all__ = [
    "CHESTXRAY14_CLASSES",
    "CHESTXRAY14_COLUMNS",
    "CHESTXRAY14_HEADER",
    "NO_FINDING",
    "chestxray14_datalists",
    "find_chestxray14_csv",
    "read_chestxray14_csv",
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
CHESTXRAY14_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)


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
        ValueError: naming the file when it cannot be read, lacks columns (named), has no rows, a row has an
            empty or missing cell in one of :data:`CHESTXRAY14_COLUMNS` (named with its line), a row holds a
            finding that is not in ``class_names`` (the closest name is suggested), an empty finding (``"Mass|"``)
            or ``"No Finding"`` together with findings, or an image is listed on more than one row (named with its
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
                    f"ChestX-ray14 table {path} lacks the columns {missing} (has "
                    f"{reader.fieldnames if reader.fieldnames else 'no header row: the file is empty'})."
                )
            for line, row in enumerate(reader, start=2):
                where = f"ChestX-ray14 table {path}, line {line}"
                for column in CHESTXRAY14_COLUMNS:
                    if not (row[column] or "").strip():
                        # csv fills the cells of a short row with None: a cut row or one of another table.
                        raise ValueError(f"{where}: the {column!r} cell is empty or missing, got the row {row!r}.")
                hot = _findings(row["Finding Labels"], index, where)
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


def _findings(cell: str, index: dict[str, int], where: str) -> list[int]:
    """The label indices of a ``Finding Labels`` cell (``"Effusion|Mass"``; ``"No Finding"``: none)."""
    findings = [f.strip() for f in cell.split("|")]
    if NO_FINDING in findings and len(findings) > 1:
        raise ValueError(f"{where}: 'Finding Labels' {cell!r} holds {NO_FINDING!r} together with findings.")
    hot = []
    for finding in findings:
        if finding == NO_FINDING:
            continue
        if not finding:
            raise ValueError(f"{where}: 'Finding Labels' {cell!r} holds an empty finding (a stray '|').")
        if finding not in index:
            close = difflib.get_close_matches(finding, [*index, NO_FINDING], n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{where}: finding {finding!r} is none of {list(index)} or {NO_FINDING!r}{hint}.")
        hot.append(index[finding])
    return hot


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
            fewer than 2 rows (patients, when ``patient_wise``), a split that leaves a part empty or an empty part
            after dropping rows without images, a ``max_samples`` below 1.
    """
    look_up_option(check_images, CHECK_IMAGES)
    if max_samples is not None and not (isinstance(max_samples, int) and max_samples >= 1):
        raise ValueError(f"max_samples must be a positive integer or None (all), got {max_samples!r}.")
    root = Path(dataset_dir).resolve()
    csv_path = find_chestxray14_csv(root)
    names, labels, patients = read_chestxray14_csv(csv_path)
    units, unit = (len(set(patients)), "patients") if patient_wise else (len(names), "rows")
    if units < 2:
        raise ValueError(
            f"ChestX-ray14 table {csv_path} has {units} {unit[:-1] if units == 1 else unit}; a split into training "
            f"and validation{' by patient' if patient_wise else ''} needs at least 2."
        )
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
        split = f"val_fraction={val_fraction}, seed={seed}, patient_wise={patient_wise}"
        if not len(idx):
            raise ValueError(
                f"the split of the {len(names)} rows of {csv_path} ({split}) leaves the {part} part empty: a larger "
                "table or another val_fraction is needed."
            )
        if not items:
            raise ValueError(f"no {part} image of {csv_path} is present in {images_dir} (split {split}).")
        lists[part] = items[:max_samples] if max_samples is not None else items
    if check_images != "none":
        for items in lists.values():
            for item in items:
                image_size(item["image"], decode=check_images == "decode")
    return lists
