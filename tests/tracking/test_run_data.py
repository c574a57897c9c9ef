"""The data a run reads, as its MLflow dataset input: named by its folder, digested by its file list, counted."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from monai_srb.tracking import SYNTHETIC, RunData, default_tracking_uri


def _items(root: Path, names: list[str], label: str | None = "mask") -> list[dict]:
    return [{"image": str(root / f"{n}.png"), **({"label": str(root / f"{n}_{label}.png")} if label else {})}
            for n in names]


# (dataset_dir below the data's parent folder, or None for the generated set; the parts; the name, counts, files)
DATA_CASES = [
    ("isic2017", {"train": ["b", "a"], "val": ["c"]}, "isic2017", {"train": 2, "val": 1},
     ["a.png", "a_mask.png", "b.png", "b_mask.png", "c.png", "c_mask.png"]),
    (None, {"train": ["x"], "val": []}, SYNTHETIC, {"train": 1, "val": 0}, ["x.png", "x_mask.png"]),
    ("hc18/", {"scored": ["p", "p"]}, "hc18", {"scored": 2}, ["p.png", "p_mask.png"]),
]


@pytest.mark.parametrize("folder,parts,name,counts,files", DATA_CASES, ids=["folder", "synthetic", "evaluate"])
def test_run_data_is_named_counted_and_listed_relative_to_its_root(tmp_path, folder, parts, name, counts, files):
    root = tmp_path / (folder or "synthetic_data")
    data = RunData(None if folder is None else str(root), {p: _items(root, n) for p, n in parts.items()}, root=root)
    assert (data.name, data.counts(), data.files()) == (name, counts, files)
    dataset = data.dataset()
    assert (dataset.name, dataset.profile, dataset.digest) == (name, {"files": len(files)}, data.digest())
    assert len(data.digest()) == 8


def test_the_digest_is_the_file_list_s_wherever_the_data_lies(tmp_path):
    here, there = tmp_path / "a" / "isic2017", tmp_path / "b" / "mnt" / "isic2017"
    first = RunData(str(here), {"train": _items(here, ["1", "2"])}, root=here)
    moved = RunData(str(there), {"train": _items(there, ["2", "1"])}, root=there)  # another order, another machine
    other = RunData(str(here), {"train": _items(here, ["1", "3"])}, root=here)
    assert first.digest() == moved.digest() != other.digest()
    assert str(tmp_path) not in first.dataset().to_json()


def test_labels_that_are_not_files_are_not_listed(tmp_path):
    items = [{"image": str(tmp_path / "a.png"), "label": [0.0, 1.0]}, {"image": str(tmp_path / "b.png"), "label": 3}]
    assert RunData(str(tmp_path), {"train": items}).files() == ["a.png", "b.png"]


@pytest.mark.parametrize("parts", [[{"image": "a.png"}], {"train": 3}, "train"])
def test_parts_must_map_names_to_data_lists(parts):
    with pytest.raises(ValueError, match="parts must map part names to data lists, got"):
        RunData("data", parts)  # type: ignore[arg-type]


def test_run_data_is_logged_as_the_run_s_dataset_input(tmp_path):
    root = tmp_path / "hc18"
    data = RunData(str(root), {"train": _items(root, ["1", "2", "3"]), "val": _items(root, ["4"])}, root=root)
    client = mlflow.MlflowClient(default_tracking_uri(str(tmp_path)))
    run_id = client.create_run(client.create_experiment("data")).info.run_id
    data.log(client, run_id, "training")
    (logged,) = client.get_run(run_id).inputs.dataset_inputs
    assert (logged.dataset.name, logged.dataset.digest) == ("hc18", data.digest())
    assert json.loads(logged.dataset.profile) == {"files": 8}
    tags = {t.key: t.value for t in logged.tags}
    assert tags == {"mlflow.data.context": "training", "num_train": "3", "num_val": "1"}
    assert str(tmp_path) not in logged.dataset.source
    # the same files read by another run in other parts (an evaluate run): one dataset, each run's own counts
    scored = RunData(str(root), {"scored": _items(root, ["4", "3", "2", "1"])}, root=root)
    other = client.create_run(client.get_experiment_by_name("data").experiment_id).info.run_id
    scored.log(client, other, "evaluation")
    (again,) = client.get_run(other).inputs.dataset_inputs
    assert again.dataset.digest == logged.dataset.digest
    assert {t.key: t.value for t in again.tags} == {"mlflow.data.context": "evaluation", "num_scored": "4"}
