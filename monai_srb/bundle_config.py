"""
Deprecated: the bundle glue moved to :mod:`monai_srb.bundle` (the override checks to
:mod:`monai_srb.bundle.overrides`, the ``output_dir`` lock and the network config file to
:mod:`monai_srb.bundle.run_dir`, :func:`~monai_srb.bundle.data.evaluation_datalist` to
:mod:`monai_srb.bundle.data`). This module re-exports the same objects, for one release, so that a bundle of
one's own naming ``$monai_srb.bundle_config.check_size`` still runs; it warns on import.
"""

from __future__ import annotations

import warnings

from monai_srb.bundle.data import evaluation_datalist
from monai_srb.bundle.overrides import (
    EVALUATE_SPLITS,
    as_bool,
    as_bools,
    check_choice,
    check_evaluate_split,
    check_fold,
    check_number,
    check_path,
    check_size,
)
from monai_srb.bundle.run_dir import NETWORK_CONFIG_FILE, OutputDirLock, load_network_config, save_network_config

__all__ = [
    "EVALUATE_SPLITS",
    "NETWORK_CONFIG_FILE",
    "OutputDirLock",
    "as_bool",
    "as_bools",
    "check_choice",
    "check_evaluate_split",
    "check_fold",
    "check_number",
    "check_path",
    "check_size",
    "evaluation_datalist",
    "load_network_config",
    "save_network_config",
]

# stacklevel 2: the warning names the line importing this module (the import machinery's frames are skipped)
warnings.warn(
    "monai_srb.bundle_config is deprecated and will be removed in the next release; import monai_srb.bundle "
    "(e.g. monai_srb.bundle.check_size) instead.",
    DeprecationWarning,
    stacklevel=2,
)
