"""The classification bundle's scores as Ignite metrics: per-class and mean ROC AUC, and accuracy."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from ignite.metrics import EpochMetric, Metric, MetricsLambda
from monai.handlers import ConfusionMatrix, from_engine
from monai.metrics import compute_roc_auc
from monai.utils import look_up_option

__all__ = ["CLASSIFICATION_TASKS", "classification_metrics"]

CLASSIFICATION_TASKS = ("multi-label", "multi-class")


def _class_auc(i: int, y_pred: torch.Tensor, y: torch.Tensor) -> float:
    return compute_roc_auc(y_pred[:, i], y[:, i])


def _stacked(output: Sequence[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    # EpochMetric concatenates batches of tensors; the evaluator's decollated output is a list of items.
    pred, label = from_engine(["pred", "label"])(output)
    return torch.stack(pred), torch.stack(label)


def classification_metrics(
    class_names: Sequence[str], task: str, prefix: str = "", binary_key: str = "pred_binary"
) -> dict[str, Metric]:
    """
    The metrics of one evaluator, by the name they are logged under:

    - ``<prefix>AUC_<class name>``: ROC AUC of each class (``nan`` for a class with one label value only);
    - ``<prefix>AUC``: their mean over the classes that have one;
    - ``<prefix>Accuracy``: multi-label, the mean over the classes of the accuracy at a 0.5 threshold;
      multi-class, top-1 accuracy. Both from MONAI's :class:`~monai.handlers.ConfusionMatrix` on the one-hot
      prediction the postprocessing writes under ``binary_key`` (thresholded, or the arg-max): its
      confusion counts are summed over the items and classes first, so ``"accuracy"`` is the mean per-class
      accuracy (every class has the same number of items), and, with one positive label per item,
      ``"sensitivity"`` (true positives over positives) is the share of items whose arg-max is their class.

    Each call builds new metric objects: an Ignite metric attaches to one engine.

    Args:
        class_names: one name per output channel.
        task: ``"multi-label"`` or ``"multi-class"``.
        prefix: put before every name, e.g. ``"test_"`` for a second evaluator logging to the same run.
        binary_key: the item key of the one-hot prediction.

    Raises:
        ValueError: for another ``task`` or an empty ``class_names``.
    """
    task = look_up_option(task, CLASSIFICATION_TASKS)
    if len(class_names) == 0:
        raise ValueError("class_names must name at least one class, got an empty list.")
    per_class = {
        f"{prefix}AUC_{name}": EpochMetric(
            functools.partial(_class_auc, i), output_transform=_stacked, check_compute_fn=False
        )
        for i, name in enumerate(class_names)
    }
    mean_auc = MetricsLambda(lambda *aucs: float(np.nanmean(aucs)), *per_class.values())
    accuracy = ConfusionMatrix(
        metric_name="accuracy" if task == "multi-label" else "sensitivity",
        output_transform=from_engine([binary_key, "label"]),
    )
    return {f"{prefix}AUC": mean_auc, **per_class, f"{prefix}Accuracy": accuracy}
