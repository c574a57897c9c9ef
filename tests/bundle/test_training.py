"""The network a compiled run's engines call, the classification loss each task trains with, and the NaN stop."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Engine, Events, State
from monai.data import MetaTensor

from monai_srb.bundle.training import CompiledOnPlainTensors, classification_loss, compiled_network, stop_on_nan_loss
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


class _Seen(torch.nn.Module):
    """Records the type of what it is called with; doubles it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = type(x)
        return 2 * x


@pytest.mark.parametrize("given", [MetaTensor, torch.Tensor])
def test_a_compiled_network_sees_plain_tensors_and_gives_back_the_metadata(given):
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    if given is MetaTensor:
        x = MetaTensor(x, meta={"filename_or_obj": "a.png"})
    inner = _Seen()
    out = CompiledOnPlainTensors(inner)(x)
    assert inner.seen is torch.Tensor  # dynamo cannot trace MetaTensor's __torch_function__
    assert type(out) is given and torch.equal(out.as_tensor() if given is MetaTensor else out, 2 * torch.arange(
        6.0).reshape(1, 1, 2, 3))
    if given is MetaTensor:
        assert out.meta["filename_or_obj"] == "a.png"


def test_compiled_network_is_one_graph_on_a_meta_tensor_batch():
    torch._dynamo.reset()
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU())
    engine = compiled_network(net, True, {"backend": "eager"})
    assert compiled_network(net, False) is net
    x = MetaTensor(torch.randn(2, 1, 8, 8), meta={"filename_or_obj": ["a.png", "b.png"]})
    x.is_batch = True
    counters = torch._dynamo.utils.counters
    counters.clear()
    out = engine(x)
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"], dict(counters)
    assert isinstance(out, MetaTensor) and out.is_batch
    torch.testing.assert_close(out.as_tensor(), net(x.as_tensor()))
