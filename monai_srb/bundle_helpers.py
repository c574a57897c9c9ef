"""
Deprecated: the bundle glue moved to :mod:`monai_srb.bundle` (data roots and splits to :mod:`monai_srb.bundle.data`,
the DDP steps to :mod:`monai_srb.bundle.distributed`, the loss, compile and NaN stop to
:mod:`monai_srb.bundle.training`, the evaluate log and prediction CSV header to :mod:`monai_srb.bundle.results`;
``CLASSIFICATION_TASKS`` is :data:`monai_srb.metrics.CLASSIFICATION_TASKS`). This module re-exports the same
objects, for one release, so that a bundle of one's own naming ``$monai_srb.bundle_helpers.stop_on_nan_loss`` still
runs; it warns on import.
"""

from __future__ import annotations

import warnings

from monai_srb.bundle.data import inference_image_dir, resolve_data_root, train_val_split
from monai_srb.bundle.distributed import distributed_device, finalize_distributed, init_distributed
from monai_srb.bundle.results import label_prediction_columns, log_evaluation
from monai_srb.bundle.training import classification_loss, compiled_network, stop_on_nan_loss
from monai_srb.metrics.classification import CLASSIFICATION_TASKS

__all__ = [
    "CLASSIFICATION_TASKS",
    "classification_loss",
    "compiled_network",
    "distributed_device",
    "finalize_distributed",
    "inference_image_dir",
    "init_distributed",
    "label_prediction_columns",
    "log_evaluation",
    "resolve_data_root",
    "stop_on_nan_loss",
    "train_val_split",
]

# stacklevel 2: the warning names the line importing this module (the import machinery's frames are skipped)
warnings.warn(
    "monai_srb.bundle_helpers is deprecated and will be removed in the next release; import monai_srb.bundle "
    "(e.g. monai_srb.bundle.stop_on_nan_loss) instead.",
    DeprecationWarning,
    stacklevel=2,
)
