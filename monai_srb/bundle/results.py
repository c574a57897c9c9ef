"""
What an evaluate or inference run leaves its user: the log line naming what was scored, with which checkpoint,
and where the scores are (:func:`log_evaluation`), and the header of the prediction CSV
(:func:`label_prediction_columns`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import pandas

__all__ = ["label_prediction_columns", "log_evaluation"]

logger = logging.getLogger(__name__)


def log_evaluation(
    scored: int,
    evaluate_split: str,
    source: str | os.PathLike,
    ckpt_path: str | os.PathLike,
    eval_dir: str | os.PathLike,
    what: str = "images",
) -> None:
    """
    Log (``INFO``) what an evaluate run scored, with which checkpoint, and where its scores are.

    Args:
        scored: how many items the evaluator scored.
        evaluate_split: the split scored (``"val"``, ``"test"`` or ``"all"``).
        source: the data set scored.
        ckpt_path: the checkpoint scored.
        eval_dir: the folder the scores went to.
        what: what the items are (``"images"``, ``"volumes"``).
    """
    logger.info(
        "evaluate: scored %d %s (evaluate_split %r of %s) with %s; scores in %s",
        scored, what, evaluate_split, source, ckpt_path, eval_dir,
    )


def label_prediction_columns(prediction_file: str | os.PathLike, class_names: Sequence[str]) -> None:
    """
    Give the CSV that MONAI's ``ClassificationSaver`` writes (no header: the image, then one probability per class)
    a header row, ``image`` and the class names, and write the probabilities with 6 decimals.

    Args:
        prediction_file: the CSV, rewritten in place.
        class_names: one name per probability column, in the network's output order.
    """
    table = pandas.read_csv(prediction_file, header=None, names=["image", *class_names])
    table.to_csv(prediction_file, index=False, float_format="%.6f")
