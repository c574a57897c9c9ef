"""kfold_split keeps its own fold assignment (not MONAI's partition_dataset): the published fold results depend on it."""

from __future__ import annotations

import pytest
from monai.data import partition_dataset

from monai_srb.data import kfold_split

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
