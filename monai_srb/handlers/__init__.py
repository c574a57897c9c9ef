"""Ignite/MONAI training glue for SRB networks."""

from __future__ import annotations

from monai_srb.handlers.cam import GradCAMHandler
from monai_srb.handlers.checkpoint_saver import AtomicCheckpointSaver, SRBCheckpointSaver
from monai_srb.handlers.final_evaluation import FinalEvaluationHandler
from monai_srb.handlers.head_circumference_error import HeadCircumferenceErrorHandler
from monai_srb.handlers.image_handler import ImageSavingHandler
from monai_srb.handlers.mlflow_tracking import (
    CHECKPOINT_SHA256_TAG,
    PROCESS_RUN_NAME,
    RUN_ID_STATE_KEY,
    SRBMLFlowHandler,
)
from monai_srb.handlers.orthogonal_retraction import OrthogonalRetractionHandler
from monai_srb.handlers.overlay import SegmentationOverlayHandler
from monai_srb.handlers.random_states import RandomStates
from monai_srb.handlers.run_params import config_overrides, config_params, describe_network
from monai_srb.handlers.segmentation_confusion import SegmentationConfusionHandler
from monai_srb.handlers.tracking_store import (
    check_tracking_server,
    default_tracking_uri,
    skip_monai_tracking,
    tracking_enabled,
)

__all__ = [
    "AtomicCheckpointSaver",
    "CHECKPOINT_SHA256_TAG",
    "PROCESS_RUN_NAME",
    "RUN_ID_STATE_KEY",
    "FinalEvaluationHandler",
    "GradCAMHandler",
    "HeadCircumferenceErrorHandler",
    "ImageSavingHandler",
    "OrthogonalRetractionHandler",
    "RandomStates",
    "SRBCheckpointSaver",
    "SRBMLFlowHandler",
    "SegmentationConfusionHandler",
    "SegmentationOverlayHandler",
    "check_tracking_server",
    "config_overrides",
    "config_params",
    "default_tracking_uri",
    "describe_network",
    "skip_monai_tracking",
    "tracking_enabled",
]
