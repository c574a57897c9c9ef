"""
What a run is: MLflow's own tags, given to every run at its creation (:func:`source_tags`: the user, the entry
point, the git commit), and, recorded once by the handler that created it, the bundle's tags (the bundle and its
version, the network built, the data set), a one-line note (:func:`run_note`, MLflow's ``mlflow.note.content``: the
run's description in the UI) and the configuration under ``config/`` (what :class:`RunParams` holds).
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
from mlflow.tracking.context.registry import resolve_tags
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT

from monai_srb.tracking.run_params import RunParams, param_value, portable_value

__all__ = ["CONFIG_FOLDER", "NOTE_TAG", "git_commit", "log_config", "run_note", "run_tags", "source_tags"]

logger = logging.getLogger(__name__)

# The artifact folder of a run's configuration.
CONFIG_FOLDER = "config"
# MLflow's tag for a run's description (the UI's "Description").
NOTE_TAG = "mlflow.note.content"


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


def source_tags(tags: Mapping[str, str] | None = None) -> dict[str, str]:
    """
    The tags of a new run: MLflow's own, from its run context providers (``resolve_tags``, as ``mlflow.start_run``
    gives them): ``mlflow.user``, ``mlflow.source.name`` (the entry point, ``sys.argv[0]``), ``mlflow.source.type``
    and, when the entry point lies in a git checkout, ``mlflow.source.git.commit`` (with the branch and repository
    URL); where MLflow finds no commit (``python -m monai.bundle run`` of an installed MONAI, a Ray worker), the
    commit of this package's checkout (:func:`git_commit`), when there is one; then ``tags``.

    Args:
        tags: further tags, which win.
    """
    found = resolve_tags()
    if MLFLOW_GIT_COMMIT not in found and git_commit():
        found[MLFLOW_GIT_COMMIT] = git_commit()
    found.update(tags or {})
    return {key: str(value) for key, value in found.items()}


def run_tags(
    meta: Mapping[str, Any], network_description: Mapping[str, Any], dataset: str | None = None
) -> dict[str, str]:
    """
    The bundle's tags of a run: ``bundle`` and ``bundle_version`` (the metadata's ``name`` and ``version``),
    ``network``, ``block`` and ``srb_positions`` (what was built) and ``dataset``; each only when known.

    Args:
        meta: the bundle's metadata (:attr:`RunParams.meta`).
        network_description: :func:`~monai_srb.tracking.run_params.describe_network` of the network, or ``{}``.
        dataset: the data set's name (:attr:`~monai_srb.tracking.run_data.RunData.name`), or ``None``.
    """
    tags: dict[str, Any] = {}
    if meta.get("name"):
        tags["bundle"] = meta["name"]
    if meta.get("version"):
        tags["bundle_version"] = meta["version"]
    for key in ("network", "block", "srb_positions"):
        if key in network_description:
            tags[key] = network_description[key]
    if dataset:
        tags["dataset"] = dataset
    return {key: param_value(value) for key, value in tags.items()}


def run_note(
    kind: str,
    meta: Mapping[str, Any],
    network_description: Mapping[str, Any],
    params: Mapping[str, Any],
    dataset: str | None = None,
    counts: Mapping[str, int] | None = None,
) -> str:
    """
    One line saying what a run is, for MLflow's ``mlflow.note.content`` (:data:`NOTE_TAG`), e.g.
    ``training of SRB skin lesion segmentation 0.2.0: SRBUNet + 4 srb_fft (before_up1, ...), instance norm; data
    hc18 (train 640, val 160); 20 epochs``. Each part only when known.

    Args:
        kind: ``"training"`` or ``"evaluation"``.
        meta: the bundle's metadata (its ``name`` and ``version``).
        network_description: :func:`~monai_srb.tracking.run_params.describe_network` of the network, or ``{}``.
        params: the run's params (their ``epochs``).
        dataset: the data set's name.
        counts: the data's parts and their sizes.
    """
    bundle = " ".join(str(meta[k]) for k in ("name", "version") if meta.get(k))
    head = f"{kind} of {bundle}" if bundle else kind
    parts = []
    if network_description.get("network"):
        network = str(network_description["network"])
        count, positions = network_description.get("srb_count", 0), network_description.get("srb_positions") or []
        if count:
            network += f" + {count} {network_description.get('block')} ({', '.join(map(str, positions))})"
        else:
            network += " without blocks"
        if network_description.get("norm") not in (None, "none"):
            network += f", {network_description['norm']} norm"
        parts.append(network)
    if dataset:
        sizes = ", ".join(f"{name} {n}" for name, n in (counts or {}).items())
        parts.append(f"data {dataset}" + (f" ({sizes})" if sizes else ""))
    if "epochs" in params and kind == "training":
        parts.append(f"{params['epochs']} epochs")
    if not parts:
        return head
    return f"{head}: " + "; ".join(parts)


def log_config(
    client: MlflowClient, run_id: str, run_params: RunParams, network_description: Mapping[str, Any]
) -> None:
    """
    Log the run's configuration under ``config/``: with :attr:`RunParams.config`, ``merged_config.json`` (the raw
    config after overrides: the files merged, overrides applied); without it, each config file as filed
    (``config/<file name>``) and ``run_params.json`` (``{"tracked": the tracked values used, "network":
    network_description}``; a path relative to the bundle root or left out, as in the params), which say which
    files ran and what the overrides made of them.

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
    tracked = {name: _portable(value, run_params.bundle_root) for name, value in run_params.tracked.items()}
    used = {"tracked": {name: value for name, value in tracked.items() if value is not None},
            "network": dict(network_description)}
    client.log_text(run_id, json.dumps(used, indent=4, default=str), f"{CONFIG_FOLDER}/run_params.json")


def _portable(value: Any, bundle_root: str | None) -> Any:
    """A tracked value as ``run_params.json`` records it: a string by :func:`portable_value`, others as they are."""
    return portable_value(value, bundle_root) if isinstance(value, str) else value
