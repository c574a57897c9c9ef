"""
Files a run uploads into named artifact folders (``checkpoints/model.pt``, ``figures/...``); MONAI's
``artifacts`` argument uploads every file flat, at the root of the run's artifacts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from mlflow import MlflowClient

__all__ = ["folder_paths", "upload_folders"]


def folder_paths(
    folders: Mapping[str, str | os.PathLike | Sequence[str | os.PathLike]] | None,
) -> dict[str, list[str | os.PathLike]]:
    """
    ``folders`` with one path or a list of paths per folder, as lists.

    Args:
        folders: MLflow folder -> file(s) or folder(s) to upload into it, e.g.
            ``{"checkpoints": "runs/models/model.pt", "figures": "runs/figures"}``.
    """
    return {
        folder: [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        for folder, paths in (folders or {}).items()
    }


def upload_folders(client: MlflowClient, run_id: str, folders: Mapping[str, Sequence[str | os.PathLike]]) -> None:
    """
    Upload each path into its folder of run ``run_id``: a file as ``<folder>/<file name>``, a folder's content
    under ``<folder>/``; missing paths are skipped (a run that crashed before writing them still uploads the rest).

    Args:
        client: the client of the run's tracking store.
        run_id: the run.
        folders: MLflow folder -> paths, as :func:`folder_paths` gives them.
    """
    for folder, paths in folders.items():
        for path in map(str, paths):
            if os.path.isdir(path):
                client.log_artifacts(run_id, path, folder)
            elif os.path.isfile(path):
                client.log_artifact(run_id, path, folder)
