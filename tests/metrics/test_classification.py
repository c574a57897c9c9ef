from __future__ import annotations

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.metrics import compute_roc_auc

from monai_srb.metrics import classification_metrics


def _items(task: str, seed: int, n: int = 24, c: int = 4) -> list[dict[str, torch.Tensor]]:
    """Decollated evaluator output: probabilities, labels, and the one-hot prediction of the bundle's postprocessing."""
    g = torch.Generator().manual_seed(seed)
    prob = torch.rand(n, c, generator=g)
    if task == "multi-label":
        label = (torch.rand(n, c, generator=g) < 0.4).float()
        binary = (prob >= 0.5).float()
    else:
        prob = prob.softmax(dim=1)
        label = torch.nn.functional.one_hot(torch.randint(0, c, (n,), generator=g), c).float()
        binary = torch.nn.functional.one_hot(prob.argmax(dim=1), c).float()
    return [{"pred": prob[i], "label": label[i], "pred_binary": binary[i]} for i in range(n)]


def _expected_accuracy(task: str, items: list[dict[str, torch.Tensor]]) -> float:
    binary = torch.stack([item["pred_binary"] for item in items])
    label = torch.stack([item["label"] for item in items])
    if task == "multi-label":  # accuracy of each class at 0.5, then the mean over the classes
        return float((binary == label).float().mean(dim=0).mean())
    return float((binary.argmax(dim=1) == label.argmax(dim=1)).float().mean())  # top-1


CASES = [("multi-label", 0, ""), ("multi-label", 1, "test_"), ("multi-class", 2, ""), ("multi-class", 3, "test_")]


@pytest.mark.parametrize("task,seed,prefix", CASES)
def test_accuracy_and_auc_by_hand(task, seed, prefix):
    items = _items(task, seed)
    names = ["a", "b", "c", "d"]
    engine = Engine(lambda engine, batch: batch)
    for name, metric in classification_metrics(names, task, prefix=prefix).items():
        metric.attach(engine, name)
    state = engine.run([items[:10], items[10:]])  # two batches: the scores are of the whole epoch
    assert state.metrics[f"{prefix}Accuracy"] == pytest.approx(_expected_accuracy(task, items), abs=1e-6)
    prob = torch.stack([item["pred"] for item in items])
    label = torch.stack([item["label"] for item in items])
    aucs = [compute_roc_auc(prob[:, i], label[:, i]) for i in range(4)]
    for i, name in enumerate(names):
        assert state.metrics[f"{prefix}AUC_{name}"] == pytest.approx(aucs[i])
    assert state.metrics[f"{prefix}AUC"] == pytest.approx(np.nanmean(aucs))


@pytest.mark.parametrize(
    "names,task,message",
    [(["a"], "binary", r"Unsupported option 'binary'.*'multi-label'"), ([], "multi-label", "empty")],
)
def test_bad_arguments_are_refused(names, task, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(names, task)
