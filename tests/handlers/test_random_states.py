from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.transforms import Compose, RandFlipd, RandRotate90d
from monai.utils import set_determinism

from monai_srb.handlers import RandomStates


def _loader(generator: torch.Generator | None = None) -> DataLoader:
    data = [{"image": torch.arange(16.0).reshape(1, 4, 4) + i} for i in range(6)]
    transform = Compose([RandFlipd("image", prob=0.5, spatial_axis=0), RandRotate90d("image", prob=0.5)])
    return DataLoader(Dataset(data, transform), batch_size=2, shuffle=True, generator=generator)


def _draws(loader: DataLoader) -> list[torch.Tensor]:
    batches = [batch["image"] for batch in loader]  # the shuffle, the flips and the rotations
    return [*batches, torch.tensor([random.random(), np.random.rand()]), torch.rand(2)]


def _round_trip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)  # as CheckpointLoader reads it


@pytest.mark.parametrize("seeded_generator", [False, True])
def test_restored_states_repeat_every_draw(seeded_generator):
    def generator() -> torch.Generator | None:
        return torch.Generator().manual_seed(3) if seeded_generator else None

    set_determinism(seed=0)
    loader = _loader(generator())
    _draws(loader)  # an epoch, so the states are not the initial ones
    saved = _round_trip(RandomStates(loader).state_dict())
    expected = _draws(loader)
    # A fresh process: the same config, seeded as at its start, then the checkpoint loaded.
    set_determinism(seed=0)
    resumed = _loader(generator())
    RandomStates(resumed).load_state_dict(saved)
    got = _draws(resumed)
    set_determinism(seed=None)
    assert len(got) == len(expected) and all(torch.equal(g, e) for g, e in zip(got, expected))


def test_every_random_transform_and_generator_is_found_once():
    loader = _loader(torch.Generator())
    state = RandomStates([loader, loader]).state_dict()
    assert len(state["transforms"]) == 3  # Compose and its two random transforms
    assert len(state["generators"]) == 1


def test_changed_transforms_are_refused():
    saved = RandomStates(_loader()).state_dict()
    fewer = DataLoader(Dataset([{"image": torch.zeros(1, 2, 2)}], Compose([RandFlipd("image")])), batch_size=1)
    with pytest.raises(ValueError, match="holds 3 random transforms states, this run has 2"):
        RandomStates(fewer).load_state_dict(saved)
