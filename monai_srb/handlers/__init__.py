"""Ignite/MONAI training glue for SRB networks."""

from __future__ import annotations

from monai_srb.handlers.cam import GradCAMHandler
from monai_srb.handlers.image_handler import ImageSavingHandler
from monai_srb.handlers.mlflow_tracking import (
    PROCESS_RUN_NAME,
    SRBMLFlowHandler,
    config_params,
    default_tracking_uri,
    flatten_config,
)
from monai_srb.handlers.orthogonal_retraction import OrthogonalRetractionHandler
from monai_srb.handlers.overlay import SegmentationOverlayHandler

__all__ = [
    "PROCESS_RUN_NAME",
    "GradCAMHandler",
    "ImageSavingHandler",
    "OrthogonalRetractionHandler",
    "SRBMLFlowHandler",
    "SegmentationOverlayHandler",
    "config_params",
    "default_tracking_uri",
    "flatten_config",
]
