"""
Deprecated: the size checks moved to :mod:`monai_srb.utils.sizes`, the one home of the size rules, which the
data sets and networks use as well as the transforms. This module re-exports them, for one release; it warns
on import.
"""

from __future__ import annotations

import warnings

from monai_srb.utils.sizes import check_positive_int, check_spatial_dims, check_spatial_size

__all__ = ["check_positive_int", "check_spatial_dims", "check_spatial_size"]

# stacklevel 2: the warning names the line importing this module (the import machinery's frames are skipped)
warnings.warn(
    "monai_srb.spectral.sizes is deprecated and will be removed in the next release; import monai_srb.utils.sizes "
    "(e.g. monai_srb.utils.check_spatial_size) instead.",
    DeprecationWarning,
    stacklevel=2,
)
