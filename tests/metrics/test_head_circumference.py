from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.networks.utils import one_hot

from monai_srb.metrics import (
    HeadCircumferenceErrorMetric,
    ellipse_circumference,
    fit_ellipse,
    mask_circumference,
)


def _ellipse(shape: tuple[int, int], centre: tuple[float, float], a: float, b: float, angle: float) -> np.ndarray:
    """A filled ellipse with semi-axis ``a`` at ``angle`` (radians) from the row axis."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    dr, dc = rows - centre[0], cols - centre[1]
    u = dr * math.cos(angle) + dc * math.sin(angle)
    v = -dr * math.sin(angle) + dc * math.cos(angle)
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def _perimeter(a: float, b: float, n: int = 200_000) -> float:
    """The exact perimeter by numerical integration of the arc length."""
    t = np.linspace(0.0, 2.0 * math.pi, n + 1)
    return float(np.hypot(np.diff(a * np.cos(t)), np.diff(b * np.sin(t))).sum())


@pytest.mark.parametrize(
    "a,b,rel", [(1.0, 1.0, 1e-9), (60.0, 35.0, 1e-9), (90.0, 50.0, 1e-9), (10.0, 1.0, 5e-5), (3.0, 0.0, 5e-4)]
)
def test_ramanujan_matches_the_arc_length(a, b, rel):
    assert ellipse_circumference(a, b) == pytest.approx(_perimeter(a, b), rel=rel)
    assert ellipse_circumference(b, a) == ellipse_circumference(a, b)


# (image shape, centre, a, b, angle): HC18-like heads (aspect about 1.2-1.7), rotated, off-centre, small.
DRAWN = [
    ((256, 256), (127.7, 128.2), 90.0, 60.0, 0.3),
    ((270, 400), (140.0, 210.0), 110.0, 80.0, 2.0),
    ((128, 128), (60.0, 70.0), 40.0, 24.0, 1.0),
    ((64, 64), (30.0, 33.0), 20.0, 12.0, 0.7),
]


@pytest.mark.parametrize("shape,centre,a,b,angle", DRAWN)
def test_fitted_ellipse_of_a_drawn_ellipse_has_its_circumference(shape, centre, a, b, angle):
    mask = _ellipse(shape, centre, a, b, angle)
    cr, cc, fa, fb, fangle = fit_ellipse(mask)
    assert (cr, cc) == pytest.approx(centre, abs=0.05)
    assert (fa, fb) == pytest.approx((a, b), rel=0.01)
    assert math.cos(2 * (fangle - angle)) > math.cos(2 * 0.01)  # axis direction (mod pi) within 0.01 rad
    assert mask_circumference(mask, 0.2) == pytest.approx(0.2 * ellipse_circumference(a, b), rel=0.01)


def test_stray_blobs_are_left_out():
    head = _ellipse((128, 128), (60.0, 70.0), 40.0, 24.0, 1.0)
    noisy = head.copy()
    noisy[2:12, 2:12] = True  # a false positive apart from the head
    assert mask_circumference(torch.as_tensor(noisy)) == mask_circumference(head)
    assert fit_ellipse(np.zeros((8, 8))) is None and math.isnan(mask_circumference(np.zeros((8, 8))))
    with pytest.raises(ValueError, match=r"mask must be 2D"):
        fit_ellipse(np.zeros((1, 8, 8)))
    with pytest.raises(ValueError, match=r"semi-axes must be non-negative, got a=-1"):
        ellipse_circumference(-1.0, 2.0)


def _label(mask: np.ndarray, name: str, shape: tuple[int, int]) -> MetaTensor:
    meta = {"filename_or_obj": name, "spatial_shape": np.array(shape)}
    return MetaTensor(torch.as_tensor(mask[None], dtype=torch.float32), meta=meta)


def test_error_in_mm_at_the_network_size():
    # A 400 x 270 image with 0.1 mm pixels, resized to 64 on its long side: a network pixel is 0.625 mm.
    pred_mask = _ellipse((64, 64), (32.0, 32.0), 20.0, 12.0, 0.0)
    true_mm = 0.625 * ellipse_circumference(20.0, 12.0)
    reference = {"/d/masks/000_HC_mask.png": (0.1, true_mm + 5.0), "/d/masks/001_HC_mask.png": (0.1, 70.0)}
    metric = HeadCircumferenceErrorMetric(reference, image_size=64)
    pred = one_hot(torch.as_tensor(pred_mask[None, None], dtype=torch.float32), 2)[0]
    empty = torch.zeros_like(pred)
    empty[0] = 1
    label = _label(pred_mask, "/d/masks/000_HC_mask.png", (400, 270))
    errors = metric(y_pred=[pred, empty], y=[label, _label(pred_mask, "/d/masks/001_HC_mask.png", (400, 270))])
    # 5 mm off for the first; the empty prediction is charged the whole 70 mm head
    assert torch.as_tensor(errors).flatten().tolist() == pytest.approx([5.0, 70.0], abs=0.01 * true_mm)
    assert float(metric.aggregate()) == pytest.approx(37.5, abs=0.01 * true_mm)
    with pytest.raises(ValueError, match=r"no reference head circumference for label /d/masks/x\.png"):
        metric(y_pred=[pred], y=[_label(pred_mask, "/d/masks/x.png", (400, 270))])
