"""
What a run is, recorded once by the handler that created it: tags (the bundle and its version, the network built,
the data set, the git commit) and the configuration under ``config/`` (what :class:`RunParams` holds).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from monai_srb.tracking.run_params import RunParams, param_value

__all__ = ["CONFIG_FOLDER", "git_commit", "log_config", "run_tags"]

logger = logging.getLogger(__name__)

# The artifact folder of a run's configuration.
CONFIG_FOLDER = "config"


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the source checkout this package runs from, or ``None`` (an installed wheel, no git)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        answer = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if answer.returncode != 0:
        return None
    return answer.stdout.strip() or None


def run_tags(
    meta: Mapping[str, Any], network_description: Mapping[str, Any], params: Mapping[str, Any]
) -> dict[str, str]:
    """
    The tags of a run: ``bundle`` and ``bundle_version`` (the metadata's ``name`` and ``version``), ``network``,
    ``block`` and ``srb_positions`` (what was built), ``dataset`` (the folder name of the ``dataset_dir`` param, or
    ``synthetic``) and ``mlflow.source.git.commit`` when there is one; each only when known.

    Args:
        meta: the bundle's metadata (:attr:`RunParams.meta`).
        network_description: :func:`~monai_srb.tracking.run_params.describe_network` of the network, or ``{}``.
        params: the run's params.
    """
    tags: dict[str, Any] = {}
    if meta.get("name"):
        tags["bundle"] = meta["name"]
    if meta.get("version"):
        tags["bundle_version"] = meta["version"]
    for key in ("network", "block", "srb_positions"):
        if key in network_description:
            tags[key] = network_description[key]
    if "dataset_dir" in params:
        folder = str(params["dataset_dir"])
        tags["dataset"] = "synthetic" if folder in ("None", "") else Path(folder).name
    if git_commit():
        tags["mlflow.source.git.commit"] = git_commit()
    return {key: param_value(value) for key, value in tags.items()}


def log_config(
    client: MlflowClient, run_id: str, run_params: RunParams, network_description: Mapping[str, Any]
) -> None:
    """
    Log the run's configuration under ``config/``: with :attr:`RunParams.config`, ``merged_config.json`` (the raw
    config after overrides: the files merged, overrides applied); without it, each config file as filed
    (``config/<file name>``) and ``run_params.json`` (``{"tracked": the tracked values used, "network":
    network_description}``), which say which files ran and what the overrides made of them.

    Args:
        client: the client of the run's tracking store.
        run_id: the run.
        run_params: what the bundle gave the handler.
        network_description: :func:`~monai_srb.tracking.run_params.describe_network` of the network, or ``{}``.
    """
    if run_params.config is not None:
        client.log_text(run_id, json.dumps(run_params.config, indent=4, default=str),
                        f"{CONFIG_FOLDER}/merged_config.json")
        return
    for path in run_params.files():
        if os.path.isfile(path):
            client.log_artifact(run_id, path, CONFIG_FOLDER)
        else:
            logger.warning("config file %s not found: the MLflow run does not hold it.", path)
    used = {"tracked": run_params.tracked, "network": dict(network_description)}
    client.log_text(run_id, json.dumps(used, indent=4, default=str), f"{CONFIG_FOLDER}/run_params.json")
