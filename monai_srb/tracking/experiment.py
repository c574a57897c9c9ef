"""The MLflow experiment a handler's runs go to, made before the handler picks its run."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Experiment, LifecycleStage
from mlflow.exceptions import MlflowException

__all__ = ["get_or_create_experiment", "sqlite_artifact_location"]


def sqlite_artifact_location(tracking_uri: str) -> str | None:
    """
    ``<folder of the database>/mlruns`` as a URI for a ``sqlite:///`` store, else ``None`` (MLflow decides):
    the artifacts stay beside the database whatever the working directory (MLflow's default is ``./mlruns``).
    MONAI 1.6's ``MLFlowHandler`` computes the same into its ``artifact_location``; MONAI 1.4 and 1.5 do not.

    Args:
        tracking_uri: the MLflow tracking URI.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri[len("sqlite:///") :]).parent.joinpath("mlruns").as_uri()


def get_or_create_experiment(client: MlflowClient, name: str, artifact_location: str | None = None) -> Experiment:
    """
    The active experiment ``name`` of ``client``'s store, created with ``artifact_location`` when there is none.

    Why not MONAI's own lookup: :class:`SRBMLFlowHandler` picks the run it joins or creates
    (:func:`~monai_srb.tracking.runs.join_or_create_run`) before ``MLFlowHandler.start`` runs, and that is where
    MONAI sets its experiment, through a private method. This is the same lookup on MLflow's public client; the
    handler stores the result in ``MLFlowHandler.experiment``, which MONAI's ``start`` then keeps.

    Args:
        client: the client of the tracking store.
        name: the experiment name.
        artifact_location: where a created experiment keeps its artifacts; ``None`` lets MLflow decide. Has no
            effect when the experiment exists.

    Raises:
        ValueError: when the experiment ``name`` exists but is deleted (as ``MLFlowHandler`` raises).
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            experiment = client.get_experiment(client.create_experiment(name, artifact_location=artifact_location))
        except MlflowException:
            experiment = client.get_experiment_by_name(name)  # another process made it first
            if experiment is None:
                raise
    if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
        raise ValueError(f"Cannot set a deleted experiment '{name}' as the active experiment")
    return experiment
