"""The experiment runs go to (tracking/experiment.py): its artifact location and making it once."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from monai_srb.tracking import default_tracking_uri, get_or_create_experiment, sqlite_artifact_location


def _client(tmp_path: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(default_tracking_uri(str(tmp_path)))


@pytest.fixture(autouse=True)
def _no_mlflow_env(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.mark.parametrize(
    "uri,expected",
    [("sqlite:////data/runs/mlflow.db", "file:///data/runs/mlruns"), ("http://127.0.0.1:5000", None)],
)
def test_sqlite_artifact_location(uri, expected):
    assert sqlite_artifact_location(uri) == expected


def test_experiment_is_made_once_and_a_deleted_one_refused(tmp_path):
    client = _client(tmp_path)
    made = get_or_create_experiment(client, "once", (tmp_path / "art").as_uri())
    again = get_or_create_experiment(client, "once", (tmp_path / "other").as_uri())  # the location is kept
    assert again.experiment_id == made.experiment_id and again.artifact_location == (tmp_path / "art").as_uri()
    client.delete_experiment(made.experiment_id)
    with pytest.raises(ValueError, match="deleted experiment 'once'"):
        get_or_create_experiment(client, "once")
