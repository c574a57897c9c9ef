"""Metrics the paper reports that MONAI lacks (their Ignite handlers are in :mod:`monai_srb.handlers`)."""

from __future__ import annotations

from monai_srb.metrics.classification import CLASSIFICATION_TASKS, classification_metrics
from monai_srb.metrics.head_circumference import (
    HeadCircumferenceErrorMetric,
    ellipse_circumference,
    fit_ellipse,
    mask_circumference,
)
from monai_srb.metrics.segmentation import SEGMENTATION_METRICS, SegmentationConfusionMetric, segmentation_scores

__all__ = ["SEGMENTATION_METRICS", "SegmentationConfusionMetric", "segmentation_scores"]
__all__ += [
    "HeadCircumferenceErrorMetric",
    "ellipse_circumference",
    "fit_ellipse",
    "mask_circumference",
]
__all__ += ["CLASSIFICATION_TASKS", "classification_metrics"]
