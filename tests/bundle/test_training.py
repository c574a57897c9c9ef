"""The classification loss each task trains with, and the stop at the first NaN loss."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Engine, Events, State

from monai_srb.bundle.training import classification_loss, stop_on_nan_loss
from monai_srb.data import positive_weights

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
