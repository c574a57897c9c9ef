"""Metrics (and their Ignite handlers) the paper reports that MONAI lacks."""

from __future__ import annotations

from monai_srb.metrics.classification import CLASSIFICATION_TASKS, classification_metrics
from monai_srb.metrics.head_circumference import (
    HeadCircumferenceErrorHandler,
    HeadCircumferenceErrorMetric,
    ellipse_circumference,
    fit_ellipse,
    mask_circumference,
)
from monai_srb.metrics.segmentation import (
    SEGMENTATION_METRICS,
    SegmentationConfusionHandler,
    SegmentationConfusionMetric,
    segmentation_scores,
)

__all__ = ["SEGMENTATION_METRICS", "SegmentationConfusionHandler", "SegmentationConfusionMetric", "segmentation_scores"]
__all__ += [
    "HeadCircumferenceErrorHandler",
    "HeadCircumferenceErrorMetric",
    "ellipse_circumference",
    "fit_ellipse",
    "mask_circumference",
]
__all__ += ["CLASSIFICATION_TASKS", "classification_metrics"]
