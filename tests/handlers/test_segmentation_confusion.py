from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine
from monai.handlers import from_engine

from monai_srb.handlers import SegmentationConfusionHandler
from monai_srb.metrics import SEGMENTATION_METRICS

# Ten pixels of three classes with the confusion matrix [[3, 1, 0], [0, 1, 1], [1, 0, 3]] (rows: label, columns:
# prediction), whose scores tests/metrics/test_segmentation.py works out by hand.
LABEL = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 2, 2]).view(1, 1, -1)
PRED = torch.tensor([0, 0, 0, 1, 1, 2, 0, 2, 2, 2]).view(1, 1, -1)
EXPECTED = {"overall_accuracy": 0.7, "mean_accuracy": 2 / 3, "mean_iou": (1.2 + 1 / 3) / 3, "fw_iou": 0.48 + 0.2 / 3}


def test_ignite_handler_logs_each_score_over_the_data_set():
    batches = [{"pred": PRED[..., :4], "label": LABEL[..., :4]}, {"pred": PRED[..., 4:], "label": LABEL[..., 4:]}]
    engine = Engine(lambda engine, batch: batch)
    for name in SEGMENTATION_METRICS:
        handler = SegmentationConfusionHandler(name, num_classes=3, output_transform=from_engine(["pred", "label"]))
        handler.attach(engine, name)
    state = engine.run(batches)
    assert {k: state.metrics[k] for k in SEGMENTATION_METRICS} == pytest.approx(EXPECTED, abs=1e-6)
    assert state.metric_details["mean_iou"].shape == (2, 3, 4)


def test_handler_takes_one_name():
    with pytest.raises(ValueError, match="one name"):
        SegmentationConfusionHandler(["mean_iou", "fw_iou"])  # type: ignore[arg-type]
