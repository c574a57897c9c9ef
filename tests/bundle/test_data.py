"""Where a run's items come from: the data root, the inference image folder, the training split, the part scored."""

from __future__ import annotations

import logging
import os
import re

import pytest

from monai_srb.bundle.data import evaluation_datalist, inference_image_dir, resolve_data_root, train_val_split
from monai_srb.data import kfold_split, split_datalist


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
    with caplog.at_level(logging.INFO, logger="monai_srb.bundle.data"):
        train, val = train_val_split(SCANS, 0.25, 3, fold=fold, num_folds=5, group_pattern=r"^(\d+)_")
    subject = {d["image"]: d["image"].split("/")[-1][:3] for d in SCANS}
    assert not {subject[d["image"]] for d in train} & {subject[d["image"]] for d in val}
    n_train, n_val = len({subject[d["image"]] for d in train}), len({subject[d["image"]] for d in val})
    assert (f"split by subject (group_pattern '^(\\d+)_'): {len(train)} training images of {n_train} subjects, "
            f"{len(val)} validation images of {n_val} subjects") in caplog.text


def test_train_val_split_by_subject_names_an_unmatched_file():
    with pytest.raises(ValueError, match=r"image '/d/images/scan.png' does not match group_pattern '\^\(\\d\+\)_'"):
        train_val_split([*SCANS, {"image": "/d/images/scan.png"}], 0.2, 0, fold=1, group_pattern=r"^(\d+)_")


def _never() -> list[dict[str, str]]:
    raise AssertionError("a part that is not chosen must not be built")


# (evaluate_split, parts, items scored)
SPLITS = [
    ("all", {"all": [{"image": "a"}, {"image": "b"}], "val": _never}, ["a", "b"]),
    ("val", {"all": [{"image": "a"}, {"image": "b"}], "val": lambda: [{"image": "b"}]}, ["b"]),
    ("test", {"train": [{"image": "a"}], "val": [], "test": [{"image": "c"}]}, ["c"]),
]


@pytest.mark.parametrize("split,parts,expected", SPLITS, ids=[s for s, _, _ in SPLITS])
def test_evaluation_datalist_builds_and_logs_the_chosen_part_only(split, parts, expected, caplog):
    caplog.set_level("INFO", logger="monai_srb.bundle.data")
    items = evaluation_datalist(split, parts, "/data/x", what="volumes")
    assert [item["image"] for item in items] == expected
    assert f"evaluate: scoring {len(expected)} volumes, evaluate_split {split!r} of /data/x" in caplog.text


# (evaluate_split, parts, message)
BAD_SPLITS = [
    ("train", {"all": [1]}, "override 'evaluate_split' must be one of 'val', 'test', 'all'; got 'train' (str)."),
    (None, {"all": [1]}, "got None (NoneType)."),
    ("test", {"all": [1], "val": [1]}, "the data set /data/x has no 'test' split to score (its splits: 'all', 'val')."),
    ("val", {"all": [1], "val": []}, "the 'val' split of the data set /data/x is empty: nothing to score."),
]


@pytest.mark.parametrize("split,parts,message", BAD_SPLITS, ids=[repr(s) for s, _, _ in BAD_SPLITS])
def test_evaluation_datalist_refuses_naming_the_split(split, parts, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        evaluation_datalist(split, parts, "/data/x")
