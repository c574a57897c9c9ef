"""
How an MLflow run ends: ``FINISHED`` at the handler's ``close`` (MONAI's own), ``FAILED`` when the engine raises,
``KILLED`` when a later run resumes from its checkpoint while it still shows ``RUNNING`` (its process was killed).
"""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.entities import Run, RunStatus

__all__ = ["FAILED", "KILLED", "RUNNING", "end_run", "is_running"]

FAILED = RunStatus.to_string(RunStatus.FAILED)
KILLED = RunStatus.to_string(RunStatus.KILLED)
RUNNING = RunStatus.to_string(RunStatus.RUNNING)


def end_run(client: MlflowClient, run_id: str, status: str) -> None:
    """
    End run ``run_id`` with ``status``.

    Args:
        client: the client of the run's tracking store.
        run_id: the run.
        status: :data:`FAILED` or :data:`KILLED` (``FINISHED`` is MONAI's ``MLFlowHandler.close``).
    """
    client.set_terminated(run_id, status)


def is_running(run: Run) -> bool:
    """
    Whether ``run`` still shows ``RUNNING``: its process is alive, or was killed before it could end the run.

    Args:
        run: the run, as the tracking store has it now.
    """
    return run.info.status == RUNNING
