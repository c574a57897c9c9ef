"""
Where a run's items come from: the data set folder, or the bundle's synthetic set, written by the main process
only under DDP (:func:`resolve_data_root`, :func:`inference_image_dir`); the split a segmentation run trains and
validates on (:func:`train_val_split`); and the part of the data set an evaluate run scores
(:func:`evaluation_datalist`). The last two log the sizes of what they chose, so that a run never trains on or
scores a fraction of a folder silently.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch.distributed as dist

from monai_srb.bundle.overrides import check_evaluate_split
from monai_srb.data import group_kfold_split, group_split_datalist, kfold_split, split_datalist, subject_ids

__all__ = ["evaluation_datalist", "inference_image_dir", "resolve_data_root", "train_val_split"]

logger = logging.getLogger(__name__)


def _barrier() -> None:
    # a single process (no DDP) has no process group to wait in
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def resolve_data_root(
    dataset_dir: str | os.PathLike | None,
    synthetic_data: Callable[[], str],
    synthetic_root: str,
    is_main_process: bool = True,
) -> str | os.PathLike:
    """
    The data set a run reads: ``dataset_dir`` when given, else the bundle's synthetic set. The main process writes
    it (``synthetic_data()``, which leaves a set written with the same arguments as it is and replaces one written
    with others, see :mod:`monai_srb.data.synthetic`); under DDP the other ranks wait at a barrier until it is
    written and read the same folder, so no two processes write, or remove, one file.

    Args:
        dataset_dir: the ``dataset_dir`` override, or ``None`` for the synthetic set.
        synthetic_data: writes the synthetic set and returns its folder (a bundle's ``_mode_: callable``
            component); called by the main process only, and only when ``dataset_dir`` is ``None``.
        synthetic_root: the folder ``synthetic_data`` writes, which the other ranks read.
        is_main_process: whether this process writes (rank 0 under DDP; ``True`` in a single process).
    """
    if dataset_dir is not None:
        return dataset_dir
    root = synthetic_data() if is_main_process else synthetic_root
    _barrier()
    return root


def inference_image_dir(
    input_dir: str | None, dataset_dir: str | None, synthetic_data: Callable[[], str] | None = None
) -> str | None:
    """
    The image folder a 2D segmentation inference predicts: ``input_dir`` when given, else ``<dataset_dir>/images``,
    else ``<synthetic set>/images``, written by ``synthetic_data()`` only then. Without ``synthetic_data`` that last
    case gives ``None`` (what :func:`monai_srb.data.folder_image_channels` takes for the synthetic set, which it
    need not write to know its channels).

    Args:
        input_dir: the ``input_dir`` override: a folder of images to predict.
        dataset_dir: the ``dataset_dir`` override: a data set with an ``images/`` folder.
        synthetic_data: writes the synthetic set and returns its folder, or ``None``.
    """
    if input_dir is not None:
        return input_dir
    if dataset_dir is not None:
        return os.path.join(dataset_dir, "images")
    return None if synthetic_data is None else os.path.join(synthetic_data(), "images")


def train_val_split(
    datalist: Sequence[dict[str, Any]],
    val_fraction: float,
    seed: int,
    fold: int | None = None,
    num_folds: int = 5,
    group_pattern: str | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """
    ``(train, val)`` of a segmentation run: :func:`monai_srb.data.split_datalist` by ``val_fraction``, or fold
    ``fold`` of :func:`monai_srb.data.kfold_split` when a fold is given (the published ISIC and HC18 grids). With a
    ``group_pattern`` both split by subject instead (:func:`monai_srb.data.group_split_datalist`,
    :func:`monai_srb.data.group_kfold_split`), so that no subject has images on both sides. Logs the image and
    subject counts of each part.

    Args:
        datalist: the items to split.
        val_fraction: share of the items for validation, used when ``fold`` is ``None``.
        seed: seed of the shuffle.
        fold: the validation fold in ``[0, num_folds)``, or ``None`` for a split by fraction.
        num_folds: the number of folds.
        group_pattern: ``None`` (split by image), or a regular expression whose first group names an image's
            subject in its file name (HC18: ``"^(\\d+)_"``).

    Raises:
        ValueError: as :func:`monai_srb.data.split_datalist` or :func:`monai_srb.data.kfold_split`, and, with a
            ``group_pattern``, as :func:`monai_srb.data.subject_ids` (an image whose name does not match it).
    """
    if group_pattern is None:
        if fold is None:
            train, val = split_datalist(datalist, val_fraction, seed)
        else:
            train, val = kfold_split(datalist, fold, num_folds, seed)
        logger.info("split by image: %d training and %d validation images", len(train), len(val))
        return train, val
    groups = subject_ids(datalist, group_pattern)
    if fold is None:
        train, val = group_split_datalist(datalist, groups, val_fraction, seed)
    else:
        train, val = group_kfold_split(datalist, groups, fold, num_folds, seed)
    subject = dict(zip((id(d) for d in datalist), groups))
    logger.info(
        "split by subject (group_pattern '%s'): %d training images of %d subjects, %d validation images of %d subjects",
        group_pattern, len(train), len({subject[id(d)] for d in train}), len(val), len({subject[id(d)] for d in val}),
    )
    return train, val


def evaluation_datalist(
    evaluate_split: str,
    parts: Mapping[str, Sequence[Any] | Callable[[], Sequence[Any]]],
    source: Any,
    what: str = "images",
) -> list[Any]:
    """
    The items an evaluate run scores: the part of the data set named by the ``evaluate_split`` override,
    with its size and name logged (``INFO``), so that a run never scores a fraction of a folder silently.

    Args:
        evaluate_split: ``"val"`` (the validation split training used), ``"test"`` (the data set's own test
            split, where it has one) or ``"all"`` (every labelled item of the data set).
        parts: the parts the data set has, by split name; a value may be a function returning the part, called
            only when that part is chosen (a split that cannot be made, e.g. of a one-image folder, then
            does not stop an ``"all"`` run).
        source: the data set (folder or file), named in the log and in errors.
        what: what the items are, for the log (``"images"``, ``"volumes"``).

    Raises:
        ValueError: for an ``evaluate_split`` other than ``"val"``, ``"test"`` or ``"all"``, one the data set
            has no part for (naming the parts it has), or an empty part.
    """
    check_evaluate_split(evaluate_split)
    if evaluate_split not in parts:
        raise ValueError(
            f"the data set {source} has no {evaluate_split!r} split to score (its splits: "
            f"{', '.join(map(repr, parts))})."
        )
    part = parts[evaluate_split]
    items = list(part() if callable(part) else part)
    if not items:
        raise ValueError(f"the {evaluate_split!r} split of the data set {source} is empty: nothing to score.")
    logger.info("evaluate: scoring %d %s, evaluate_split %r of %s", len(items), what, evaluate_split, source)
    return items
