"""
Deprecated: :func:`~monai_srb.nets.init_srbs` and :func:`~monai_srb.nets.param_groups` moved to
:mod:`monai_srb.nets.srb_parameters`, named for what they set (they stay importable as
``monai_srb.nets.init_srbs`` / ``param_groups``, the names the grids use). This module re-exports them, for one
release; it warns on import.
"""

from __future__ import annotations

import warnings

from monai_srb.nets.srb_parameters import init_srbs, param_groups

__all__ = ["init_srbs", "param_groups"]

# stacklevel 2: the warning names the line importing this module (the import machinery's frames are skipped)
warnings.warn(
    "monai_srb.nets.tuning is deprecated and will be removed in the next release; import monai_srb.nets "
    "(monai_srb.nets.init_srbs, monai_srb.nets.param_groups) or monai_srb.nets.srb_parameters instead.",
    DeprecationWarning,
    stacklevel=2,
)
