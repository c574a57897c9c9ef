from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workflows import figures
from workflows.figures import most_different, overlays


class _Fixed(nn.Module):
    """Predicts foreground wherever the image's first channel exceeds ``threshold``."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fg = (x[:, :1] > self.threshold).float()
        return torch.cat([1 - fg, fg], dim=1)


def _dataset(channels: int) -> list[dict]:
    # a ramp scaled per image; label: the right half. IoU at thresholds 0.5 and 0.9: 0 and 0 (scale 0.2),
    # 1 and 0.25 (1.0), 0.375 and 0 (0.6), 1 and 0.125 (0.95)
    ramp = torch.linspace(0, 1, 16).expand(16, 16)
    label = torch.zeros(1, 16, 16)
    label[:, :, 8:] = 1
    return [{"image": (ramp * s).expand(channels, 16, 16).clone(), "label": label, "name": f"img{k}"}
            for k, s in enumerate([0.2, 1.0, 0.6, 0.95])]


@pytest.mark.parametrize("num_images, expected", [(1, [3]), (2, [3, 1]), (4, [3, 1, 2, 0])])
def test_most_different_orders_by_iou_gap(num_images, expected):
    models = {"a": _Fixed(0.5), "b": _Fixed(0.9)}
    assert most_different(models, _dataset(1), num_images) == expected


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("select, expected", [("first", [0, 1]), ("differ", [3, 1])])
def test_overlays_of_grayscale_and_rgb_images(tmp_path, channels, select, expected):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    models = {"a": _Fixed(0.5), "b": _Fixed(0.9)}
    path = tmp_path / "overlays.png"
    assert overlays(models, _dataset(channels), path, num_images=2, select=select) == expected
    assert path.stat().st_size > 0


def test_overlays_refuse_an_unknown_selection(tmp_path):
    with pytest.raises(ValueError, match="'worst'"):
        overlays({"a": _Fixed(0.5)}, _dataset(1), tmp_path / "x.png", select="worst")


@pytest.mark.parametrize("pred,label,expected", [
    ([[1, 1, 0], [0, 0, 0]], [[1, 0, 0], [0, 1, 0]], 1 / 3),
    ([[1, 0], [0, 0]], [[1, 0], [0, 0]], 1.0),
    ([[0, 0], [0, 0]], [[0, 0], [0, 0]], 1.0),  # nothing to find, nothing found: MONAI's compute_iou gives 1
    ([[1, 1], [0, 0]], [[0, 0], [0, 0]], 0.0),
])
def test_foreground_iou_is_monais(pred, label, expected):
    assert figures._iou(np.array(pred), np.array(label)) == pytest.approx(expected)
