"""
MLflow tracking for the bundles: :class:`SRBMLFlowHandler` (MONAI's ``MLFlowHandler`` with a SQLite default, one
run per process, FAILED / KILLED runs, buffered metrics, the best checkpoint as a model) and its parts, one job a
module:

- :mod:`.store`: where a run goes (the default store, tracking on or off, a server that must answer).
- :mod:`.experiment`: the experiment, made before the handler picks its run.
- :mod:`.runs`: which run a handler joins or creates, resumed runs linked, evaluate runs nested.
- :mod:`.status`: how a run ends (FINISHED, FAILED, KILLED).
- :mod:`.run_params`: the params (:class:`RunParams`, built by the bundle config; the network built), without
  machine paths.
- :mod:`.run_data`: the data a run reads as its dataset input (:class:`RunData`: name, digest, counts).
- :mod:`.identity`: MLflow's own tags, the bundle's tags, the run's one-line note and the configuration under
  ``config/``.
- :mod:`.metric_buffer`: metrics sent in batches, one step axis per kind of metric.
- :mod:`.artifacts`: files uploaded into named folders.
- :mod:`.logged_model`: the network as an MLflow model with a checked ``python_function`` flavour.
- :mod:`.handler`: the handler that composes them.
"""

from __future__ import annotations

from monai_srb.tracking.artifacts import folder_paths, upload_folders
from monai_srb.tracking.experiment import get_or_create_experiment, sqlite_artifact_location
from monai_srb.tracking.handler import SRBMLFlowHandler
from monai_srb.tracking.identity import (
    CONFIG_FOLDER,
    NOTE_TAG,
    git_commit,
    log_config,
    run_note,
    run_tags,
    source_tags,
)
from monai_srb.tracking.logged_model import (
    INPUT_METADATA_KEY,
    LoggedNetwork,
    ModelInputError,
    input_contract,
    log_best_model,
    log_network,
    model_signature,
)
from monai_srb.tracking.metric_buffer import (
    EPOCH_SUFFIX,
    ITERATION_SUFFIX,
    EpochMean,
    MetricBuffer,
    epoch_metrics,
    iteration_metrics,
    iteration_names,
    loss_values,
)
from monai_srb.tracking.run_data import SYNTHETIC, FileListDataset, RunData
from monai_srb.tracking.run_params import (
    RunParams,
    config_overrides,
    describe_network,
    param_value,
    portable_value,
)
from monai_srb.tracking.runs import (
    CHECKPOINT_SHA256_TAG,
    PROCESS_RUN_NAME,
    RUN_ID_STATE_KEY,
    file_sha256,
    join_or_create_run,
    link_resumed_run,
    parent_run_tags,
)
from monai_srb.tracking.status import FAILED, KILLED, RUNNING, end_run, is_running
from monai_srb.tracking.store import (
    check_tracking_server,
    default_tracking_uri,
    disable_monai_mlflow_handlers,
    tracking_enabled,
)

__all__ = [
    "CHECKPOINT_SHA256_TAG",
    "CONFIG_FOLDER",
    "EPOCH_SUFFIX",
    "FAILED",
    "INPUT_METADATA_KEY",
    "ITERATION_SUFFIX",
    "KILLED",
    "NOTE_TAG",
    "PROCESS_RUN_NAME",
    "RUNNING",
    "RUN_ID_STATE_KEY",
    "SYNTHETIC",
    "EpochMean",
    "FileListDataset",
    "LoggedNetwork",
    "MetricBuffer",
    "ModelInputError",
    "RunData",
    "RunParams",
    "SRBMLFlowHandler",
    "check_tracking_server",
    "config_overrides",
    "default_tracking_uri",
    "describe_network",
    "disable_monai_mlflow_handlers",
    "end_run",
    "epoch_metrics",
    "file_sha256",
    "folder_paths",
    "get_or_create_experiment",
    "git_commit",
    "input_contract",
    "is_running",
    "iteration_metrics",
    "iteration_names",
    "join_or_create_run",
    "link_resumed_run",
    "log_best_model",
    "log_config",
    "log_network",
    "loss_values",
    "model_signature",
    "param_value",
    "parent_run_tags",
    "portable_value",
    "run_note",
    "run_tags",
    "source_tags",
    "sqlite_artifact_location",
    "tracking_enabled",
    "upload_folders",
]
