"""
Deterministic train/validation splits: of data lists by fraction and k-fold cross-validation, by image or by
subject (``group_pattern``: no subject on both sides), and of item indices by item and by patient (ChestX-ray14).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "group_kfold_split",
    "group_split_datalist",
    "kfold_split",
    "patient_split",
    "random_split",
    "split_datalist",
    "subject_ids",
]


def _check_each_image_once(datalist: Sequence[dict[str, Any]]) -> None:
    # An image listed twice could land on both sides of the split and inflate the validation scores.
    first: dict[Any, int] = {}
    for i, item in enumerate(datalist):
        image = item.get("image") if isinstance(item, dict) else None
        if isinstance(image, (str, os.PathLike)):
            key: Any = os.path.normpath(os.fspath(image))
        elif isinstance(image, (list, tuple)) and all(isinstance(f, (str, os.PathLike)) for f in image):
            key = tuple(os.path.normpath(os.fspath(f)) for f in image)
        else:
            continue  # arrays in memory: nothing to compare by name
        if key in first:
            raise ValueError(
                f"data list items {first[key]} and {i} are the same image {image!r}; a split could put it in both "
                "training and validation: list each image once."
            )
        first[key] = i


def _check_val_fraction(val_fraction: float) -> None:
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")


def _check_fold(fold: int, num_folds: int) -> None:
    if num_folds < 2:
        raise ValueError(f"num_folds must be at least 2, got {num_folds}.")
    if not 0 <= fold < num_folds:
        raise ValueError(f"fold must be in [0, {num_folds}), got {fold}.")


def _split(
    datalist: Sequence[dict[str, Any]], val_indices: np.ndarray
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    _check_each_image_once(datalist)
    val_idx = set(val_indices.tolist())
    train = [d for i, d in enumerate(datalist) if i not in val_idx]
    val = [d for i, d in enumerate(datalist) if i in val_idx]
    return train, val


def split_datalist(
    datalist: Sequence[dict[str, Any]], val_fraction: float = 0.25, seed: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """
    Split a data list into training and validation parts, the same way for the same ``seed``.

    Args:
        datalist: the items to split.
        val_fraction: share of the items for validation, in (0, 1); rounded, at least one item each side.
        seed: seed of the shuffle.

    Returns:
        ``(train, val)``, each in the order of ``datalist``.

    Raises:
        ValueError: when ``val_fraction`` is outside (0, 1), ``datalist`` has fewer than 2 items, or two items
            have the same ``"image"`` path (named, with both positions).
    """
    _check_val_fraction(val_fraction)
    if len(datalist) < 2:
        raise ValueError(
            f"need at least 2 items (images or volumes) to split into training and validation, got {len(datalist)}."
        )
    num_val = min(max(1, round(len(datalist) * val_fraction)), len(datalist) - 1)
    # monai.data.partition_dataset can leave the validation side empty for small lists, hence our own rounding.
    return _split(datalist, np.random.default_rng(seed).permutation(len(datalist))[:num_val])


def kfold_split(
    datalist: Sequence[dict[str, Any]], fold: int, num_folds: int = 5, seed: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """
    Fold ``fold`` of a ``num_folds``-fold cross-validation: the items are shuffled with ``seed`` and cut
    into ``num_folds`` parts of sizes differing by at most one; part ``fold`` is the validation set and
    the others the training set. Over ``fold = 0 .. num_folds - 1`` every item is validated exactly once.
    For a single split by fraction see :func:`split_datalist`, which shuffles the same way.

    Args:
        datalist: the items to split.
        fold: the validation part, in ``[0, num_folds)``.
        num_folds: number of parts, at least 2.
        seed: seed of the shuffle.

    Returns:
        ``(train, val)``, each in the order of ``datalist``.

    Raises:
        ValueError: when ``num_folds`` < 2, ``fold`` is outside ``[0, num_folds)``, ``datalist`` has
            fewer than ``num_folds`` items, or two items have the same ``"image"`` path (named, with both
            positions).
    """
    _check_fold(fold, num_folds)
    if len(datalist) < num_folds:
        raise ValueError(
            f"need at least num_folds={num_folds} items for a {num_folds}-fold split, got {len(datalist)}."
        )
    # Not monai.data.partition_dataset (nor monai.apps.CrossValidation, built on it): it shuffles with the legacy
    # np.random.RandomState and deals the shuffled items out round-robin, so its folds hold other items than these
    # contiguous parts of a default_rng permutation. Switching would change every published fold result (the ISIC
    # and HC18 tables in docs/results.md); tests/data/test_split.py pins the assignment and shows the difference.
    parts = np.array_split(np.random.default_rng(seed).permutation(len(datalist)), num_folds)
    return _split(datalist, parts[fold])


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


def subject_ids(datalist: Sequence[dict[str, Any]], group_pattern: str) -> list[str]:
    r"""
    The subject of each item: the first group of ``group_pattern`` (a regular expression, searched in the file
    name of the item's ``"image"``), e.g. ``r"^(\d+)_"`` gives HC18's ``010_HC.png`` and ``010_2HC.png`` the subject
    ``"010"``.

    Args:
        datalist: the items, each with an ``"image"`` path (or a list of paths, whose first names the item).
        group_pattern: a regular expression with at least one group.

    Raises:
        ValueError: when ``group_pattern`` does not compile or has no group, an item has no image path, or an
            image's file name does not match it (naming the file and the pattern).
    """
    try:
        pattern = re.compile(group_pattern)
    except (re.error, TypeError) as e:
        raise ValueError(f"group_pattern must be a regular expression, got '{group_pattern}': {e}.") from None
    if pattern.groups < 1:
        raise ValueError(
            f"group_pattern must have a group naming the subject, e.g. '^(\\d+)_', got '{group_pattern}'."
        )
    out = []
    for i, item in enumerate(datalist):
        image = item.get("image") if isinstance(item, dict) else None
        if isinstance(image, (list, tuple)) and image:
            image = image[0]
        if not isinstance(image, (str, os.PathLike)):
            raise ValueError(f"a split by subject needs an image path per item, got item {i}: {item!r}.")
        name = os.path.basename(os.fspath(image))
        match = pattern.search(name)
        if match is None or not match.group(1):
            raise ValueError(
                f"image {os.fspath(image)!r} does not match group_pattern '{group_pattern}': its first group must "
                "name the image's subject."
            )
        out.append(match.group(1))
    return out


def group_kfold_split(
    datalist: Sequence[dict[str, Any]], groups: Sequence[str], fold: int, num_folds: int = 5, seed: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """
    Fold ``fold`` of a ``num_folds``-fold cross-validation by subject: the subjects (sorted, then shuffled with
    ``seed``) are cut into ``num_folds`` parts of sizes differing by at most one subject, and part ``fold``'s
    images are the validation set. No subject has images on both sides, and over ``fold = 0 .. num_folds - 1``
    every image is validated exactly once. :func:`patient_split` splits by fraction the same way.

    Args:
        datalist: the items to split.
        groups: the subject of each item, e.g. from :func:`subject_ids`.
        fold: the validation part, in ``[0, num_folds)``.
        num_folds: number of parts, at least 2.
        seed: seed of the subject shuffle.

    Returns:
        ``(train, val)``, each in the order of ``datalist``.

    Raises:
        ValueError: when ``num_folds`` < 2, ``fold`` is outside ``[0, num_folds)``, ``groups`` and ``datalist``
            differ in length, there are fewer subjects than ``num_folds``, or two items have the same image.
    """
    _check_fold(fold, num_folds)
    if len(groups) != len(datalist):
        raise ValueError(f"need one subject per item: {len(groups)} subjects for {len(datalist)} items.")
    subjects, inverse = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    if len(subjects) < num_folds:
        raise ValueError(
            f"need at least num_folds={num_folds} subjects for a {num_folds}-fold split by subject, got "
            f"{len(subjects)}."
        )
    parts = np.array_split(np.random.default_rng(seed).permutation(len(subjects)), num_folds)
    return _split(datalist, np.flatnonzero(np.isin(inverse, parts[fold])))


def group_split_datalist(
    datalist: Sequence[dict[str, Any]], groups: Sequence[str], val_fraction: float = 0.25, seed: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """
    :func:`split_datalist` by subject: whole subjects go to validation (:func:`patient_split`) until it holds
    at least ``round(len(datalist) * val_fraction)`` images, so no subject is on both sides.

    Raises:
        ValueError: when ``val_fraction`` is outside (0, 1), ``groups`` and ``datalist`` differ in length, there
            are fewer than 2 subjects, or two items have the same image.
    """
    if len(groups) != len(datalist):
        raise ValueError(f"need one subject per item: {len(groups)} subjects for {len(datalist)} items.")
    if len(set(groups)) < 2:
        raise ValueError(
            f"need at least 2 subjects to split into training and validation by subject, got {len(set(groups))}."
        )
    _, val = patient_split(groups, val_fraction, seed)
    if len(val) == len(datalist):  # the last subject overshot the target: keep one subject for training
        val = np.flatnonzero(np.asarray(groups) != groups[-1])
    return _split(datalist, val)
