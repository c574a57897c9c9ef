"""Ignite handler of the paper's segmentation scores, for an evaluator's key or additional metrics."""

from __future__ import annotations

from collections.abc import Callable

from monai.handlers import IgniteMetricHandler

from monai_srb.metrics.segmentation import SEGMENTATION_METRICS, SegmentationConfusionMetric

__all__ = ["SegmentationConfusionHandler"]


class SegmentationConfusionHandler(IgniteMetricHandler):
    """
    Ignite handler of one :class:`SegmentationConfusionMetric` score, for an evaluator's
    ``key_val_metric`` / ``additional_metrics`` (as :class:`monai.handlers.MeanDice` is for Dice).

    Args:
        metric_name: one of :data:`SEGMENTATION_METRICS`.
        num_classes: see :class:`SegmentationConfusionMetric`.
        output_transform: callable that takes ``engine.state.output`` to ``(y_pred, y)``, e.g.
            ``monai.handlers.from_engine(["pred", "label"])``.
        save_details: whether to store the per-image ``[tp, fp, tn, fn]`` counts in
            ``engine.state.metric_details[name]``.

    Raises:
        ValueError: as :class:`SegmentationConfusionMetric`.
    """

    def __init__(
        self,
        metric_name: str = "mean_iou",
        num_classes: int | None = None,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        if not isinstance(metric_name, str):
            raise ValueError(f"metric_name must be one name among {SEGMENTATION_METRICS}, got {metric_name!r}.")
        metric_fn = SegmentationConfusionMetric(num_classes=num_classes, metric_name=metric_name)
        self.metric_name = metric_name
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)
