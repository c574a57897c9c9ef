"""The named functions the bundle configs call instead of long ``$`` expressions."""

from __future__ import annotations

import csv
import logging
import math
import os
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events, State

from monai_srb.bundle_helpers import (
    classification_loss,
    distributed_device,
    finalize_distributed,
    inference_image_dir,
    label_prediction_columns,
    log_evaluation,
    resolve_data_root,
    stop_on_nan_loss,
    train_val_split,
)
from monai_srb.data import kfold_split, positive_weights, split_datalist


class _Writer:
    """Stands in for a bundle's synthetic-data component: records each call, returns the folder it wrote."""

    def __init__(self, root: str) -> None:
        self.root, self.calls = root, 0

    def __call__(self) -> str:
        self.calls += 1
        return self.root


# (dataset_dir, is_main_process, expected root, whether the synthetic set is written)
DATA_ROOTS = [
    ("/data/isic", True, "/data/isic", False),
    ("/data/isic", False, "/data/isic", False),
    (None, True, "/out/synthetic_data", True),
    (None, False, "/out/synthetic_data", False),  # another DDP rank reads what the main process wrote
]


@pytest.mark.parametrize("dataset_dir,main,expected,written", DATA_ROOTS)
def test_resolve_data_root_writes_the_synthetic_set_on_the_main_process_only(dataset_dir, main, expected, written):
    writer = _Writer("/out/synthetic_data")
    assert resolve_data_root(dataset_dir, writer, "/out/synthetic_data", is_main_process=main) == expected
    assert writer.calls == int(written)


# (input_dir, dataset_dir, with a writer, expected folder, whether the synthetic set is written)
IMAGE_DIRS = [
    ("/in", "/data", True, "/in", False),
    (None, "/data", True, os.path.join("/data", "images"), False),
    (None, None, True, os.path.join("/out/synthetic_data", "images"), True),
    (None, None, False, None, False),  # the channel count of the synthetic set needs no files
]


@pytest.mark.parametrize("input_dir,dataset_dir,with_writer,expected,written", IMAGE_DIRS)
def test_inference_image_dir_writes_the_synthetic_set_only_when_it_is_predicted(
    input_dir, dataset_dir, with_writer, expected, written
):
    writer = _Writer("/out/synthetic_data")
    assert inference_image_dir(input_dir, dataset_dir, writer if with_writer else None) == expected
    assert writer.calls == int(written)


DATALIST = [{"image": f"{i}.png", "label": f"{i}_mask.png"} for i in range(10)]


# (fold, the split expected)
SPLITS = [
    (None, split_datalist(DATALIST, 0.2, 3)),
    (0, kfold_split(DATALIST, 0, 5, 3)),
    (4, kfold_split(DATALIST, 4, 5, 3)),
]


@pytest.mark.parametrize("fold,expected", SPLITS)
def test_train_val_split_is_the_fraction_split_or_the_fold(fold, expected):
    assert train_val_split(DATALIST, 0.2, 3, fold=fold, num_folds=5) == expected
    assert train_val_split(DATALIST, 0.2, 3, fold=fold, num_folds=5, group_pattern=None) == expected


# Two or three scans of a subject, named as HC18 names them.
SCANS = [{"image": f"/d/images/{s:03d}_{k}HC.png"} for s in range(8) for k in ("", "2", "3")[: 1 + s % 3]]


@pytest.mark.parametrize("fold", [None, 0, 2, 4])
def test_train_val_split_by_subject_logs_the_counts(fold, caplog):
    with caplog.at_level(logging.INFO, logger="monai_srb.bundle_helpers"):
        train, val = train_val_split(SCANS, 0.25, 3, fold=fold, num_folds=5, group_pattern=r"^(\d+)_")
    subject = {d["image"]: d["image"].split("/")[-1][:3] for d in SCANS}
    assert not {subject[d["image"]] for d in train} & {subject[d["image"]] for d in val}
    n_train, n_val = len({subject[d["image"]] for d in train}), len({subject[d["image"]] for d in val})
    assert (f"split by subject (group_pattern '^(\\d+)_'): {len(train)} training images of {n_train} subjects, "
            f"{len(val)} validation images of {n_val} subjects") in caplog.text


def test_train_val_split_by_subject_names_an_unmatched_file():
    with pytest.raises(ValueError, match=r"image '/d/images/scan.png' does not match group_pattern '\^\(\\d\+\)_'"):
        train_val_split([*SCANS, {"image": "/d/images/scan.png"}], 0.2, 0, fold=1, group_pattern=r"^(\d+)_")


LABELLED = [{"label": torch.tensor(v, dtype=torch.float32)} for v in ([1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 1])]


@pytest.mark.parametrize(
    "task,weighted,loss_type,pos_weight",
    [
        ("multi-label", True, torch.nn.BCEWithLogitsLoss, positive_weights(LABELLED)),
        ("multi-label", False, torch.nn.BCEWithLogitsLoss, None),
        ("multi-class", True, torch.nn.CrossEntropyLoss, None),
        ("multi-class", False, torch.nn.CrossEntropyLoss, None),
    ],
)
def test_classification_loss_matches_the_task(task, weighted, loss_type, pos_weight):
    loss = classification_loss(task, LABELLED, weighted, "cpu")
    assert type(loss) is loss_type
    got = getattr(loss, "pos_weight", None)
    assert (got is None and pos_weight is None) or torch.equal(got, pos_weight)


def test_classification_loss_rejects_another_task():
    with pytest.raises(ValueError, match="regression"):
        classification_loss("regression", LABELLED, True, "cpu")


@pytest.mark.parametrize("losses,iterations", [([1.0, 0.5, 0.25], 3), ([1.0, math.nan, 0.25], 2), ([math.inf], 1)])
def test_stop_on_nan_loss_ends_the_run_at_the_first_bad_loss(losses, iterations):
    trainer = Engine(lambda engine, batch: [{"loss": torch.tensor(losses[engine.state.iteration - 1])}])
    seen = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda engine: seen.append(engine.state.iteration))
    assert stop_on_nan_loss(trainer) is trainer
    state: State = trainer.run(range(len(losses)), max_epochs=1)
    assert seen == list(range(1, iterations + 1)) and state.iteration == iterations


def test_distributed_device_is_the_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed_device() == torch.device("cpu")


def test_distributed_device_is_the_local_rank_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed_device() == torch.device("cuda", 1)


def test_finalize_distributed_waits_for_every_rank_before_leaving_the_group(tmp_path: Path, monkeypatch):
    import ignite.distributed as idist
    import torch.distributed as dist

    calls = []
    for name in ("barrier", "monitored_barrier", "destroy_process_group"):
        original = getattr(dist, name)
        monkeypatch.setattr(dist, name, lambda *a, _f=original, _n=name, **k: (calls.append(_n), _f(*a, **k))[1])
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    idist.sync()  # Ignite picks the group up, as the bundles' engines do
    try:
        finalize_distributed()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    # gloo: the barrier that keeps no earlier collective alive (see finalize_distributed)
    assert calls[0] == "monitored_barrier" and "barrier" not in calls and "destroy_process_group" in calls
    assert not dist.is_initialized() and idist.get_world_size() == 1
    calls.clear()
    finalize_distributed()  # no group (a single-process run): nothing to wait for or leave
    assert calls == []


def test_finalize_distributed_uses_the_plain_barrier_on_nccl(monkeypatch):
    import ignite.distributed as idist
    import torch.distributed as dist

    calls = []
    state = {"initialized": True}
    monkeypatch.setattr(dist, "is_initialized", lambda: state["initialized"])
    monkeypatch.setattr(dist, "get_backend", lambda *a, **k: "nccl")
    monkeypatch.setattr(dist, "barrier", lambda *a, **k: calls.append("barrier"))
    monkeypatch.setattr(dist, "monitored_barrier", lambda *a, **k: calls.append("monitored_barrier"))
    monkeypatch.setattr(idist, "finalize", lambda: calls.append("idist.finalize"))

    def destroy(*args, **kwargs) -> None:
        calls.append("destroy")
        state["initialized"] = False

    monkeypatch.setattr(dist, "destroy_process_group", destroy)
    finalize_distributed()
    assert calls == ["barrier", "idist.finalize", "destroy"]


def test_label_prediction_columns_names_each_probability(tmp_path: Path):
    path = tmp_path / "predictions.csv"
    path.write_text("/a.png,0.1234567,0.5\n/b.png,1e-08,0.9999999\n")
    label_prediction_columns(path, ["Atelectasis", "Effusion"])
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["image", "Atelectasis", "Effusion"],
        ["/a.png", "0.123457", "0.500000"],
        ["/b.png", "0.000000", "1.000000"],
    ]


def test_log_evaluation_says_what_was_scored_with_what(caplog):
    with caplog.at_level(logging.INFO, logger="monai_srb.bundle_helpers"):
        log_evaluation(3, "val", "/data/x", "/out/models/model.pt", "/out/eval", what="volumes")
    assert (
        "evaluate: scored 3 volumes (evaluate_split 'val' of /data/x) with /out/models/model.pt; scores in /out/eval"
        in caplog.text
    )
