from __future__ import annotations

import pytest
import torch
from monai.networks.utils import one_hot

from monai_srb.metrics import SEGMENTATION_METRICS, SegmentationConfusionMetric, segmentation_scores


def _pixels(confusion: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Label and prediction maps (1, 1, N) realising ``confusion[i][j]`` pixels of class i predicted as j."""
    y, y_pred = [], []
    for i, row in enumerate(confusion):
        for j, count in enumerate(row):
            y += [i] * count
            y_pred += [j] * count
    return torch.tensor(y_pred).view(1, 1, -1), torch.tensor(y).view(1, 1, -1)


# Confusion matrices n[i][j] (rows: label, columns: prediction) and their scores worked out by hand:
# overall = sum_i n_ii / N; mean acc = mean_i n_ii / t_i; IoU_i = n_ii / (t_i + p_i - n_ii);
# fw IoU = sum_i t_i / N * IoU_i (t_i row sums, p_i column sums).
CASES = [
    (
        "binary",
        [[6, 2], [1, 3]],
        # overall 9/12; acc 6/8, 3/4; IoU 6/9, 3/6; fw 8/12*6/9 + 4/12*3/6
        {"overall_accuracy": 9 / 12, "mean_accuracy": 0.75, "mean_iou": (6 / 9 + 0.5) / 2, "fw_iou": 4 / 9 + 1 / 6},
    ),
    (
        "three classes",
        [[3, 1, 0], [0, 1, 1], [1, 0, 3]],
        # overall 7/10; acc 3/4, 1/2, 3/4; IoU 3/5, 1/3, 3/5; fw .4*.6 + .2/3 + .4*.6
        {"overall_accuracy": 0.7, "mean_accuracy": 2 / 3, "mean_iou": (1.2 + 1 / 3) / 3, "fw_iou": 0.48 + 0.2 / 3},
    ),
    (
        "perfect",
        [[5, 0], [0, 2]],
        {"overall_accuracy": 1.0, "mean_accuracy": 1.0, "mean_iou": 1.0, "fw_iou": 1.0},
    ),
    (
        "class 2 never present nor predicted",
        [[4, 1, 0], [1, 4, 0], [0, 0, 0]],
        # class 2 has no accuracy and no IoU: left out of the means, weight 0 in fw IoU
        {"overall_accuracy": 0.8, "mean_accuracy": 0.8, "mean_iou": 4 / 6, "fw_iou": 4 / 6},
    ),
    (
        "class 1 only predicted",
        [[3, 1], [0, 0]],
        # class 1: accuracy undefined (left out), IoU 0/1 = 0 (counted in the mean)
        {"overall_accuracy": 0.75, "mean_accuracy": 0.75, "mean_iou": 0.375, "fw_iou": 0.75},
    ),
]


@pytest.mark.parametrize("name,confusion,expected", CASES, ids=[c[0] for c in CASES])
def test_scores_of_hand_computed_confusion_matrices(name, confusion, expected):
    y_pred, y = _pixels(confusion)
    num_classes = len(confusion)
    metric = SegmentationConfusionMetric(num_classes=num_classes, metric_name=SEGMENTATION_METRICS)
    metric(y_pred, y)
    got = dict(zip(SEGMENTATION_METRICS, (v.item() for v in metric.aggregate())))
    assert got == pytest.approx(expected, abs=1e-6)

    # The same pixels one-hot (channels give the classes), as a decollated list of channel-first images,
    # and split over several calls, accumulate to the same data-set scores.
    oh_pred, oh_y = one_hot(y_pred, num_classes, dim=1), one_hot(y, num_classes, dim=1)
    for name_ in SEGMENTATION_METRICS:
        split = SegmentationConfusionMetric(metric_name=name_)
        half = oh_y.shape[-1] // 2
        split([oh_pred[..., :half][0]], [oh_y[..., :half][0]])
        split(oh_pred[..., half:], oh_y[..., half:])
        (value,) = split.aggregate()
        assert value.item() == pytest.approx(expected[name_], abs=1e-6)
        split.reset()
        split(oh_pred, oh_y)
        assert split.aggregate()[0].item() == pytest.approx(expected[name_], abs=1e-6)


def test_data_set_score_is_not_the_mean_of_image_scores():
    # Image 1: 100 pixels all right; image 2: 4 pixels, half wrong. Pooled pixels, as the paper counts.
    metric = SegmentationConfusionMetric(num_classes=2, metric_name="overall_accuracy")
    metric(torch.zeros(1, 1, 10, 10), torch.zeros(1, 1, 10, 10))
    metric(torch.tensor([[[[0, 1], [0, 1]]]]), torch.tensor([[[[0, 0], [1, 1]]]]))
    assert metric.aggregate()[0].item() == pytest.approx(102 / 104)


def test_scores_from_monai_layout():
    # [tp, fp, tn, fn] per class of the binary case above.
    confusion = torch.tensor([[6.0, 1.0, 3.0, 2.0], [3.0, 2.0, 6.0, 1.0]])
    assert segmentation_scores(confusion, "fw_iou").item() == pytest.approx(4 / 9 + 1 / 6)
    with pytest.raises(ValueError, match=r"Unsupported option 'dice'.*'mean_iou'"):
        segmentation_scores(confusion, "dice")
    with pytest.raises(ValueError, match=r"\(num_classes, 4\)"):
        segmentation_scores(confusion[:, :3], "mean_iou")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"metric_name": "iou"}, r"'iou' is not a valid value"),
        ({"metric_name": ("mean_iou", "dice")}, r"Unsupported option 'dice'"),
        ({"metric_name": ()}, "metric_name must name at least one"),
        ({"num_classes": 1}, "num_classes"),
    ],
)
def test_metric_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SegmentationConfusionMetric(**kwargs)


def test_metric_rejects_bad_inputs():
    metric = SegmentationConfusionMetric(num_classes=3)
    with pytest.raises(ValueError, match="no confusion counts"):
        metric.aggregate()
    with pytest.raises(ValueError, match="expected num_classes=3"):
        metric(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="same shapes"):
        SegmentationConfusionMetric()(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 4, 4))
