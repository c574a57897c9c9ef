"""
The data a run reads, as MLflow records it: one dataset input (``mlflow.log_input``'s record) named after the data
set's folder (``synthetic`` for the bundles' generated set), whose digest is that of the sorted list of its files,
relative to the data set's folder, and whose profile counts them (``{"files": 16}``); the input's tags count the
items of each part (``num_train``, ``num_val``; an evaluate run's ``num_scored``) beside MLflow's context tag.
Where the data lies on this machine is not recorded: the same files give the same digest on every machine.

Why the parts' counts are tags, not the profile: MLflow stores a dataset once per experiment by name and digest,
so a dataset's profile is what the first run that logged it gave; the tags belong to each run's input, and the
training run and the evaluate run that score the same files with other parts each keep their own counts.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.data.meta_dataset import MetaDataset
from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.entities import Dataset as DatasetEntity
from mlflow.entities import DatasetInput, InputTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

__all__ = ["SYNTHETIC", "FileListDataset", "RunData"]

# The name of the data a bundle generates when no dataset_dir is given.
SYNTHETIC = "synthetic"
# The keys of a data list item that name its files (the bundles' "image" and, for segmentation, "label").
_FILE_KEYS = ("image", "label")


class FileListDataset(MetaDataset):
    """
    An ``mlflow.data`` dataset known by its files, not their content: ``MetaDataset`` with a profile.

    Args:
        name: the data set's name.
        digest: the digest of its file list.
        profile: what its file list holds, e.g. ``{"files": 16}``.
    """

    def __init__(self, name: str, digest: str, profile: Mapping[str, int]) -> None:
        self._profile = dict(profile)
        # the folder's name, not its path: the source says which data set, not where this machine keeps it
        super().__init__(LocalArtifactDatasetSource(name), name=name, digest=digest)

    @property
    def profile(self) -> dict[str, int]:
        """What the file list holds."""
        return self._profile

    def to_dict(self) -> dict[str, str]:
        """``MetaDataset``'s fields and the profile (as JSON), which MLflow shows with the dataset."""
        config = super().to_dict()
        config["profile"] = json.dumps(self._profile)
        return config


class RunData:
    """
    The data a bundle run reads (``run_data`` in the configs), recorded by :class:`SRBMLFlowHandler` as the run's
    dataset input (:meth:`log`) and its ``dataset`` tag (:attr:`name`)::

        "run_data": {"_target_": "monai_srb.tracking.RunData", "dataset_dir": "@dataset_dir",
                     "root": "@data_root", "parts": {"train": "$@split[0]", "val": "$@split[1]"}}

    Args:
        dataset_dir: the data set's folder (the bundles' ``dataset_dir``); ``None`` for the generated set.
        parts: part name -> data list (items whose ``"image"`` and ``"label"`` strings are file paths; other
            labels, e.g. class vectors, are not files).
        root: the folder the files are listed relative to (the bundles' ``data_root``: ``dataset_dir`` or the
            generated set's folder); ``None`` for ``dataset_dir``, else the files' common folder.

    Raises:
        ValueError: when ``parts`` is not a mapping of part names to lists of data list items.
    """

    def __init__(
        self,
        dataset_dir: str | os.PathLike | None,
        parts: Mapping[str, Sequence[Mapping[str, Any]]],
        root: str | os.PathLike | None = None,
    ) -> None:
        if not isinstance(parts, Mapping) or not all(isinstance(p, Sequence) for p in parts.values()):
            raise ValueError(f"parts must map part names to data lists, got {type(parts).__name__} {parts!r:.200}.")
        self.dataset_dir = None if dataset_dir in (None, "") else str(dataset_dir)
        self.parts = {str(name): list(items) for name, items in parts.items()}
        self.root = str(root) if root is not None else self.dataset_dir

    @property
    def name(self) -> str:
        """The data set's folder name, or :data:`SYNTHETIC` without a ``dataset_dir``."""
        if self.dataset_dir is None:
            return SYNTHETIC
        return Path(self.dataset_dir).resolve().name

    def counts(self) -> dict[str, int]:
        """The number of items in each part."""
        return {name: len(items) for name, items in self.parts.items()}

    def files(self) -> list[str]:
        """The files of every part, relative to ``root`` (``/``-separated), sorted, each once."""
        paths = [
            str(path)
            for items in self.parts.values()
            for item in items
            for key in _FILE_KEYS
            for path in _paths(item.get(key) if isinstance(item, Mapping) else None)
        ]
        if not paths:
            return []
        root = self.root if self.root is not None else os.path.commonpath([os.path.abspath(p) for p in paths])
        return sorted({Path(os.path.relpath(os.path.abspath(p), os.path.abspath(root))).as_posix() for p in paths})

    def digest(self) -> str:
        """The first 8 hex digits (MLflow's digest length) of the sha256 of :meth:`files`, one a line."""
        return hashlib.sha256("\n".join(self.files()).encode()).hexdigest()[:8]

    def dataset(self) -> FileListDataset:
        """The ``mlflow.data`` dataset: :attr:`name`, :meth:`digest`, and the number of :meth:`files` as its profile."""
        return FileListDataset(self.name, self.digest(), {"files": len(self.files())})

    def log(self, client: MlflowClient, run_id: str, context: str) -> None:
        """
        Record :meth:`dataset` as an input of run ``run_id``, tagged with MLflow's context (``mlflow.data.context``)
        and the size of each part (:meth:`counts`, as ``num_<part>``).

        Why the client's ``log_inputs`` (which ``mlflow.log_input`` calls) and not ``mlflow.log_input``: the fluent
        API logs to its active run, and the ``with mlflow.start_run(run_id=...)`` that would make the handler's run
        active ends it (``FINISHED``) on leaving, while training has just begun.

        Args:
            client: the client of the run's tracking store.
            run_id: the run.
            context: ``"training"`` or ``"evaluation"``.
        """
        fields = self.dataset().to_dict()
        entity = DatasetEntity(
            name=fields["name"], digest=fields["digest"], source_type=fields["source_type"], source=fields["source"],
            schema=fields.get("schema"), profile=fields.get("profile"),
        )
        tags = [InputTag(f"num_{part}", str(n)) for part, n in self.counts().items()]
        tags.append(InputTag(MLFLOW_DATASET_CONTEXT, context))
        client.log_inputs(run_id, datasets=[DatasetInput(entity, tags=tags)])


def _paths(value: Any) -> list[str | os.PathLike]:
    """The file paths in a data list item's value: one path, a list of paths (channels as files), or none."""
    if isinstance(value, (str, os.PathLike)):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, os.PathLike)) for v in value):
        return list(value)
    return []
