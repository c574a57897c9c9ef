"""Deprecated: moved to :mod:`monai_srb.tracking.run_params`; goes in the next release."""

from __future__ import annotations

import warnings

from monai_srb.tracking.run_params import config_overrides, config_params, describe_network

__all__ = ["config_overrides", "config_params", "describe_network"]

warnings.warn(
    "monai_srb.handlers.run_params is deprecated and goes in the next release: import from monai_srb.tracking "
    "(config_params: give the handler a monai_srb.tracking.RunParams as run_params).",
    DeprecationWarning,
    stacklevel=2,
)
