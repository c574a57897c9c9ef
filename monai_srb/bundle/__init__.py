"""
What the bundle configs call: the named functions behind their overrides, data, run folder, DDP and engine steps,
each called from a short ``$`` expression or as a ``_target_`` component, so that the config composes and Python
decides.

- :mod:`monai_srb.bundle.overrides`: the checks every override passes first thing in ``initialize``; a failing
  check's error is the last line the run prints.
- :mod:`monai_srb.bundle.run_dir`: the ``output_dir`` lock and the network overrides stored beside the checkpoints.
- :mod:`monai_srb.bundle.data`: the data set or synthetic set a run reads, its training split, the part scored.
- :mod:`monai_srb.bundle.distributed`: the DDP device and process group.
- :mod:`monai_srb.bundle.training`: the (compiled) network the engines run, the classification loss, the NaN stop.
- :mod:`monai_srb.bundle.results`: what an evaluate run logs, the header of an inference's prediction CSV.
- :mod:`monai_srb.bundle.zoo`: a finished run as a model-zoo bundle folder (``monai-srb package``).
"""

from __future__ import annotations

from monai_srb.bundle.data import evaluation_datalist, inference_image_dir, resolve_data_root, train_val_split
from monai_srb.bundle.distributed import distributed_device, finalize_distributed, init_distributed
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
from monai_srb.bundle.results import label_prediction_columns, log_evaluation
from monai_srb.bundle.run_dir import NETWORK_CONFIG_FILE, OutputDirLock, load_network_config, save_network_config
from monai_srb.bundle.training import CompiledOnPlainTensors, classification_loss, compiled_network, stop_on_nan_loss
from monai_srb.bundle.zoo import RUN_KEY, RunRecord, package_run

__all__ = ["EVALUATE_SPLITS", "as_bool", "as_bools", "check_choice", "check_evaluate_split", "check_fold"]
__all__ += ["check_number", "check_path", "check_size"]
__all__ += ["NETWORK_CONFIG_FILE", "OutputDirLock", "load_network_config", "save_network_config"]
__all__ += ["evaluation_datalist", "inference_image_dir", "resolve_data_root", "train_val_split"]
__all__ += ["distributed_device", "finalize_distributed", "init_distributed"]
__all__ += ["CompiledOnPlainTensors", "classification_loss", "compiled_network", "stop_on_nan_loss"]
__all__ += ["label_prediction_columns", "log_evaluation"]
__all__ += ["RUN_KEY", "RunRecord", "package_run"]
