"""
The segmentation scores the SRB paper reports (after Long et al., FCN, CVPR 2015): overall (pixel)
accuracy, mean (class) accuracy, mean IoU and frequency-weighted IoU, from a confusion matrix accumulated
over a whole data set.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.metrics import CumulativeIterationMetric
from monai.metrics.confusion_matrix import compute_confusion_matrix_metric, get_confusion_matrix
from monai.networks.utils import one_hot
from monai.utils import ensure_tuple, look_up_option

__all__ = ["SEGMENTATION_METRICS", "SegmentationConfusionMetric", "segmentation_scores"]

SEGMENTATION_METRICS = ("overall_accuracy", "mean_accuracy", "mean_iou", "fw_iou")


def segmentation_scores(confusion: torch.Tensor, metric_name: str) -> torch.Tensor:
    """
    One of the paper's scores from per-class pixel counts.

    With ``n_ij`` the number of pixels of class ``i`` predicted as class ``j``, ``t_i = sum_j n_ij`` the
    pixels of class ``i`` and ``N = sum_i t_i``, MONAI's one-vs-rest layout holds, for class ``i``,
    ``tp = n_ii``, ``fn = t_i - n_ii``, ``fp = sum_j n_ji - n_ii`` and ``tn = N - tp - fn - fp``, and:

    - ``"overall_accuracy"``: ``sum_i n_ii / N``;
    - ``"mean_accuracy"``: mean over classes of ``n_ii / t_i`` (MONAI's sensitivity);
    - ``"mean_iou"``: mean over classes of ``IoU_i = n_ii / (t_i + sum_j n_ji - n_ii)`` (MONAI's threat score);
    - ``"fw_iou"``: ``sum_i (t_i / N) IoU_i``.

    A class absent from both labels and predictions has no accuracy or IoU and is left out of the means
    (a class only predicted has accuracy NaN, left out, and IoU 0); NaN when no class has a value.

    Args:
        confusion: ``(num_classes, 4)`` counts ``[tp, fp, tn, fn]`` per class, as
            :func:`monai.metrics.confusion_matrix.get_confusion_matrix` returns per image, summed over images.
            Each pixel must carry exactly one label and one predicted class (one-hot inputs).
        metric_name: one of :data:`SEGMENTATION_METRICS`.

    Returns:
        a 0-dim float tensor.

    Raises:
        ValueError: on an unknown ``metric_name`` or a ``confusion`` that is not ``(num_classes, 4)``.
    """
    metric_name = look_up_option(metric_name, SEGMENTATION_METRICS)
    if confusion.ndim != 2 or confusion.shape[-1] != 4:
        raise ValueError(
            f"confusion must be (num_classes, 4) [tp, fp, tn, fn] counts, got shape {tuple(confusion.shape)}."
        )
    confusion = confusion.double()  # pixel counts of a data set exceed float32's exact integers
    tp, _, _, fn = confusion.unbind(-1)
    total = confusion[0].sum()
    if metric_name == "overall_accuracy":
        return (tp.sum() / total).float()
    if metric_name == "mean_accuracy":
        return compute_confusion_matrix_metric("sensitivity", confusion).nanmean().float()
    iou = compute_confusion_matrix_metric("threat score", confusion)
    if metric_name == "mean_iou":
        return iou.nanmean().float()
    # A class that never occurs weighs 0, whatever its (NaN or 0) IoU.
    frequency = (tp + fn) / total
    return (frequency * iou.nan_to_num(0.0)).sum().float()


class SegmentationConfusionMetric(CumulativeIterationMetric):
    """
    The paper's overall accuracy, mean accuracy, mean IoU and frequency-weighted IoU of a segmentation,
    over all the pixels seen since the last ``reset()`` (a data-set confusion matrix, not a mean of
    per-image scores). Every class, background included, counts in the means.

    Per iteration it stores each image's per-class ``[tp, fp, tn, fn]`` from
    :func:`monai.metrics.confusion_matrix.get_confusion_matrix` (gathered across ranks in distributed
    runs by MONAI's :class:`~monai.metrics.Cumulative`); ``aggregate()`` sums them and applies
    :func:`segmentation_scores`.

    Args:
        num_classes: number of classes, background included. Needed when ``y_pred`` / ``y`` are label maps
            (one channel, class indices), which are then one-hot encoded; ``None`` takes the classes from
            the channels of one-hot inputs.
        metric_name: one of :data:`SEGMENTATION_METRICS` (``"overall_accuracy"``, ``"mean_accuracy"``,
            ``"mean_iou"``, ``"fw_iou"``) or a sequence of them.

    ``__call__(y_pred, y)`` takes batch-first tensors in shape (batch, num_classes, spatial_1[, spatial_2,
    ...]) one-hot and binarised (e.g. after ``AsDiscrete(argmax=True, to_onehot=num_classes)``), or
    (batch, 1, spatial_1[, ...]) class indices with ``num_classes`` set. ``aggregate()`` returns a list
    with one 0-dim tensor per name in ``metric_name``, in that order (like
    :class:`monai.metrics.ConfusionMatrixMetric`).

    Raises:
        ValueError: on an unknown name in ``metric_name``, or ``num_classes`` below 2.
    """

    def __init__(self, num_classes: int | None = None, metric_name: Sequence[str] | str = "mean_iou") -> None:
        super().__init__()
        self.metric_name = tuple(look_up_option(m, SEGMENTATION_METRICS) for m in ensure_tuple(metric_name))
        if not self.metric_name:
            raise ValueError(f"metric_name must name at least one of {SEGMENTATION_METRICS}, got {metric_name!r}.")
        if num_classes is not None and num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}.")
        self.num_classes = num_classes

    def _one_hot(self, x: torch.Tensor) -> torch.Tensor:
        if self.num_classes is not None and x.shape[1] == 1:
            return one_hot(x, num_classes=self.num_classes, dim=1)
        return x

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """
        Args:
            y_pred: one-hot binarised prediction (batch, C, ...) or class indices (batch, 1, ...).
            y: one-hot label (batch, C, ...) or class indices (batch, 1, ...).

        Returns:
            per-image counts in shape (batch, C, 4).

        Raises:
            ValueError: when the (one-hot) inputs differ in shape or have fewer than 3 dimensions.
        """
        if y_pred.ndim < 3:
            raise ValueError(f"y_pred must be (batch, channels, spatial...), got shape {tuple(y_pred.shape)}.")
        y_pred, y = self._one_hot(y_pred), self._one_hot(y)
        if self.num_classes is not None and y_pred.shape[1] != self.num_classes:
            raise ValueError(f"y_pred has {y_pred.shape[1]} channels, expected num_classes={self.num_classes}.")
        return get_confusion_matrix(y_pred=y_pred, y=y, include_background=True)

    def aggregate(self) -> list[torch.Tensor]:  # type: ignore[override]
        """
        Returns:
            one 0-dim tensor per name in ``metric_name``, over all pixels since the last ``reset()``.

        Raises:
            ValueError: when nothing has been accumulated.
        """
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor) or data.numel() == 0:
            raise ValueError("no confusion counts accumulated: call the metric on predictions first.")
        confusion = data.reshape(-1, *data.shape[-2:]).sum(0)
        return [segmentation_scores(confusion, name) for name in self.metric_name]
