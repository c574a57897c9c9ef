"""Deprecated: moved to :mod:`monai_srb.tracking.store`; goes in the next release."""

from __future__ import annotations

import warnings

from monai_srb.tracking.store import check_tracking_server, default_tracking_uri, tracking_enabled
from monai_srb.tracking.store import disable_monai_mlflow_handlers as skip_monai_tracking

__all__ = ["check_tracking_server", "default_tracking_uri", "skip_monai_tracking", "tracking_enabled"]

warnings.warn(
    "monai_srb.handlers.tracking_store is deprecated and goes in the next release: import from monai_srb.tracking "
    "(skip_monai_tracking is now disable_monai_mlflow_handlers).",
    DeprecationWarning,
    stacklevel=2,
)
