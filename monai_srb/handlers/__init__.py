"""
Ignite/MONAI training glue for SRB networks. The MLflow handler and its helpers moved to :mod:`monai_srb.tracking`;
their old names here (``monai_srb.handlers.SRBMLFlowHandler``, ``tracking_enabled``, ``default_tracking_uri``,
``config_params``, ``skip_monai_tracking``, ...) still work for this release and warn (``DeprecationWarning``).
"""

from __future__ import annotations

import importlib
import warnings

from monai_srb.handlers.cam import GradCAMHandler
from monai_srb.handlers.checkpoint_saver import AtomicCheckpointSaver, SRBCheckpointSaver
from monai_srb.handlers.final_evaluation import FinalEvaluationHandler
from monai_srb.handlers.head_circumference_error import HeadCircumferenceErrorHandler
from monai_srb.handlers.image_handler import ImageSavingHandler
from monai_srb.handlers.orthogonal_retraction import OrthogonalRetractionHandler
from monai_srb.handlers.overlay import SegmentationOverlayHandler
from monai_srb.handlers.random_states import RandomStates
from monai_srb.handlers.segmentation_confusion import SegmentationConfusionHandler

__all__ = [
    "AtomicCheckpointSaver",
    "FinalEvaluationHandler",
    "GradCAMHandler",
    "HeadCircumferenceErrorHandler",
    "ImageSavingHandler",
    "OrthogonalRetractionHandler",
    "RandomStates",
    "SRBCheckpointSaver",
    "SegmentationConfusionHandler",
    "SegmentationOverlayHandler",
]

# Old name here -> (module it lives in now, its name there); kept for one release, each use warns.
_MOVED = {
    "CHECKPOINT_SHA256_TAG": ("monai_srb.tracking.runs", "CHECKPOINT_SHA256_TAG"),
    "PROCESS_RUN_NAME": ("monai_srb.tracking.runs", "PROCESS_RUN_NAME"),
    "RUN_ID_STATE_KEY": ("monai_srb.tracking.runs", "RUN_ID_STATE_KEY"),
    "SRBMLFlowHandler": ("monai_srb.tracking.handler", "SRBMLFlowHandler"),
    "check_tracking_server": ("monai_srb.tracking.store", "check_tracking_server"),
    "config_overrides": ("monai_srb.tracking.run_params", "config_overrides"),
    "config_params": ("monai_srb.tracking.run_params", "config_params"),
    "default_tracking_uri": ("monai_srb.tracking.store", "default_tracking_uri"),
    "describe_network": ("monai_srb.tracking.run_params", "describe_network"),
    "skip_monai_tracking": ("monai_srb.tracking.store", "disable_monai_mlflow_handlers"),
    "tracking_enabled": ("monai_srb.tracking.store", "tracking_enabled"),
}


def __getattr__(name: str) -> object:
    # only names not defined here reach this (PEP 562): star imports and MONAI's ComponentLocator never see them
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, new = _MOVED[name]
    hint = "RunParams (the bundle's run_params)" if name == "config_params" else new
    warnings.warn(
        f"monai_srb.handlers.{name} is deprecated and goes in the next release: use monai_srb.tracking.{hint}.",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(module), new)
