"""
Seeded splits keep their assignment: kfold_split its own (not MONAI's partition_dataset), on which the published fold
results depend, and random_split / patient_split the ChestX-ray14 ones.
"""

from __future__ import annotations

import numpy as np
import pytest
from monai.data import partition_dataset

from monai_srb.data import (
    group_kfold_split,
    group_split_datalist,
    kfold_split,
    patient_split,
    random_split,
    subject_ids,
)

DATA = [{"image": f"{i}.png"} for i in range(10)]
# The validation items of each fold of 10 items, 5 folds, seed 0: what every published ISIC / HC18 fold used.
PINNED = {0: [4, 6], 1: [2, 7], 2: [3, 5], 3: [0, 9], 4: [1, 8]}


@pytest.mark.parametrize("fold,expected", sorted(PINNED.items()))
def test_kfold_assignment_is_pinned(fold, expected):
    train, val = kfold_split(DATA, fold, num_folds=5, seed=0)
    assert val == [DATA[i] for i in expected]
    assert train == [d for i, d in enumerate(DATA) if i not in expected]


def test_monai_partition_dataset_would_assign_other_folds():
    # the reason kfold_split does not call it (see the comment in monai_srb/data/split.py)
    parts = partition_dataset(DATA, num_partitions=5, shuffle=True, seed=0, even_divisible=False)
    monai_folds = [sorted(int(d["image"].split(".")[0]) for d in part) for part in parts]
    assert sorted(map(sorted, monai_folds)) != sorted(PINNED.values())


def test_random_split_counts_and_determinism():
    train, val = random_split(112_120, 0.2, seed=0)
    assert (len(train), len(val)) == (89_696, 22_424)
    assert not set(train) & set(val)
    again = random_split(112_120, 0.2, seed=0)
    assert np.array_equal(train, again[0]) and not np.array_equal(val, random_split(112_120, 0.2, seed=1)[1])


def test_patient_split_is_disjoint():
    patients = [str(p) for p in np.random.default_rng(0).integers(0, 50, 400)]
    train, val = patient_split(patients, 0.2, seed=3)
    assert len(train) + len(val) == 400 and len(val) >= 80
    assert not {patients[i] for i in train} & {patients[i] for i in val}


# A toy HC18-like folder: 12 subjects, some with 2 or 3 scans (010_HC.png, 010_2HC.png, 010_3HC.png).
SCANS = [1, 2, 1, 3, 1, 1, 2, 1, 3, 1, 2, 1]
GROUPED = [
    {"image": f"/data/images/{s:03d}_{'' if k == 0 else k + 1}HC.png"} for s, n in enumerate(SCANS) for k in range(n)
]
HC18 = r"^(\d+)_"


def test_subject_ids_read_the_first_group_of_the_file_name():
    subjects = subject_ids(GROUPED, HC18)
    assert subjects[:4] == ["000", "001", "001", "002"] and len(set(subjects)) == len(SCANS)


@pytest.mark.parametrize("num_folds,seed", [(2, 0), (3, 1), (5, 3), (5, 4)])
def test_group_folds_keep_subjects_together_and_cover_every_image_once(num_folds, seed):
    subjects = subject_ids(GROUPED, HC18)
    validated = []
    for fold in range(num_folds):
        train, val = group_kfold_split(GROUPED, subjects, fold, num_folds, seed)
        of = {d["image"]: s for d, s in zip(GROUPED, subjects)}
        assert not {of[d["image"]] for d in train} & {of[d["image"]] for d in val}
        assert len(train) + len(val) == len(GROUPED)
        validated += [d["image"] for d in val]
    assert sorted(validated) == sorted(d["image"] for d in GROUPED)


def test_group_folds_are_fixed_by_the_seed():
    subjects = subject_ids(GROUPED, HC18)
    first = [group_kfold_split(GROUPED, subjects, f, 3, seed=3)[1] for f in range(3)]
    assert first == [group_kfold_split(GROUPED, subjects, f, 3, seed=3)[1] for f in range(3)]
    assert first != [group_kfold_split(GROUPED, subjects, f, 3, seed=4)[1] for f in range(3)]


@pytest.mark.parametrize("val_fraction,seed", [(0.2, 0), (0.25, 1), (0.5, 2), (0.9, 3)])
def test_group_fraction_split_keeps_subjects_together(val_fraction, seed):
    subjects = subject_ids(GROUPED, HC18)
    train, val = group_split_datalist(GROUPED, subjects, val_fraction, seed)
    of = {d["image"]: s for d, s in zip(GROUPED, subjects)}
    assert train and val and not {of[d["image"]] for d in train} & {of[d["image"]] for d in val}
    assert len(val) >= round(len(GROUPED) * val_fraction) or len(train) > 0
    assert (train, val) == group_split_datalist(GROUPED, subjects, val_fraction, seed)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: subject_ids(GROUPED + [{"image": "/data/images/scan_b.png"}], HC18),
         r"image '/data/images/scan_b.png' does not match group_pattern '\^\(\\d\+\)_'"),
        (lambda: subject_ids(GROUPED, r"^\d+_"), r"must have a group naming the subject.*got '\^\\d\+_'"),
        (lambda: subject_ids(GROUPED, "(["), r"must be a regular expression, got '\(\['"),
        (lambda: group_kfold_split(GROUPED[:3], ["a", "a", "b"], 0, 3), "need at least num_folds=3 subjects.*got 2"),
        (lambda: group_kfold_split(GROUPED, ["a"], 0, 3), "need one subject per item: 1 subjects for 19 items"),
        (lambda: group_split_datalist(GROUPED[:2], ["a", "a"], 0.5), "at least 2 subjects.*got 1"),
    ],
)
def test_group_split_errors_name_the_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()
