"""Deprecated: moved to :mod:`monai_srb.tracking` (:mod:`monai_srb.tracking.handler`); goes in the next release."""

from __future__ import annotations

import warnings

from monai_srb.tracking.handler import SRBMLFlowHandler
from monai_srb.tracking.runs import CHECKPOINT_SHA256_TAG, PROCESS_RUN_NAME, RUN_ID_STATE_KEY

__all__ = ["CHECKPOINT_SHA256_TAG", "PROCESS_RUN_NAME", "RUN_ID_STATE_KEY", "SRBMLFlowHandler"]

warnings.warn(
    "monai_srb.handlers.mlflow_tracking is deprecated and goes in the next release: import from monai_srb.tracking.",
    DeprecationWarning,
    stacklevel=2,
)
