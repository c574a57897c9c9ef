"""Ignite handler of the HC18 head-circumference error (mm), for an evaluator's additional metrics."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from monai.handlers import IgniteMetricHandler

from monai_srb.metrics.head_circumference import HeadCircumferenceErrorMetric

__all__ = ["HeadCircumferenceErrorHandler"]


class HeadCircumferenceErrorHandler(IgniteMetricHandler):
    """
    :class:`HeadCircumferenceErrorMetric` as an Ignite metric for MONAI's evaluators, e.g. in a bundle's
    ``additional_metrics`` as ``val_hc_error_mm``.

    Args:
        reference: see :class:`HeadCircumferenceErrorMetric`.
        image_size: see :class:`HeadCircumferenceErrorMetric`.
        foreground: see :class:`HeadCircumferenceErrorMetric`.
        output_transform: maps ``engine.state.output`` to ``(y_pred, y)``.
        save_details: keep the per-image errors in ``engine.state.metric_details``.
    """

    def __init__(
        self,
        reference: Mapping[str, tuple[float, float]],
        image_size: int | None = None,
        foreground: int = 1,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        metric_fn = HeadCircumferenceErrorMetric(reference, image_size, foreground)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)
