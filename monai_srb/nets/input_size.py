"""
Deprecated: :func:`~monai_srb.utils.sizes.check_input_size` moved to :mod:`monai_srb.utils.sizes`, beside the other
size rules (it stays importable as ``monai_srb.nets.check_input_size``). This module re-exports it, for one
release; it warns on import.
"""

from __future__ import annotations

import warnings

from monai_srb.utils.sizes import check_input_size

__all__ = ["check_input_size"]

# stacklevel 2: the warning names the line importing this module (the import machinery's frames are skipped)
warnings.warn(
    "monai_srb.nets.input_size is deprecated and will be removed in the next release; import "
    "monai_srb.utils.check_input_size (or monai_srb.nets.check_input_size) instead.",
    DeprecationWarning,
    stacklevel=2,
)
