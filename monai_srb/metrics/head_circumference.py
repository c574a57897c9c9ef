"""
The HC18 challenge's score: the head circumference (mm) of an ellipse fitted to a segmented fetal head,
and its absolute error against the reference, as a MONAI cumulative metric (its Ignite handler:
:class:`monai_srb.handlers.HeadCircumferenceErrorHandler`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from monai.metrics import CumulativeIterationMetric
from scipy import ndimage

__all__ = [
    "HeadCircumferenceErrorMetric",
    "ellipse_circumference",
    "fit_ellipse",
    "mask_circumference",
]


def ellipse_circumference(a: float, b: float) -> float:
    """
    Ramanujan's second approximation of an ellipse's perimeter, ``pi (a + b) (1 + 3h / (10 + sqrt(4 - 3h)))``
    with ``h = ((a - b) / (a + b))^2``: relative error below 1e-9 for the head's aspect ratios (below 2),
    exact for a circle, 4e-4 in the worst case (a degenerate ellipse, ``b = 0``).

    Args:
        a: one semi-axis, >= 0.
        b: the other semi-axis, >= 0.

    Raises:
        ValueError: when a semi-axis is negative.
    """
    if a < 0 or b < 0:
        raise ValueError(f"semi-axes must be non-negative, got a={a}, b={b}.")
    if a + b == 0:
        return 0.0
    h = ((a - b) / (a + b)) ** 2
    return math.pi * (a + b) * (1.0 + 3.0 * h / (10.0 + math.sqrt(4.0 - 3.0 * h)))


def fit_ellipse(mask: np.ndarray | torch.Tensor) -> tuple[float, float, float, float, float] | None:
    """
    The ellipse with the same area centre and second moments as the largest connected component (8-connected)
    of a 2D binary mask: a filled ellipse with semi-axes ``a >= b`` has the covariance eigenvalues ``a^2/4``,
    ``b^2/4``. Moments use every pixel of the region, so they are robust to a ragged boundary (unlike a
    least-squares fit to boundary points), and the largest component drops stray blobs of a prediction.

    Args:
        mask: ``(H, W)`` array, nonzero inside.

    Returns:
        ``(centre_row, centre_col, a, b, angle)`` in pixels (``angle``: of the ``a`` axis from the row axis,
        radians in [0, pi)), or ``None`` for an empty mask.

    Raises:
        ValueError: when ``mask`` is not 2D.
    """
    mask = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask) != 0
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2D (H, W), got shape {mask.shape}.")
    components, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count == 0:
        return None
    sizes = np.bincount(components.ravel())[1:]
    rows, cols = np.nonzero(components == 1 + int(np.argmax(sizes)))
    points = np.stack([rows, cols]).astype(np.float64)
    centre = points.mean(axis=1)
    # Each pixel is a unit square, not a point: its own variance 1/12 per axis belongs to the region's.
    cov = np.cov(points, bias=True) + np.eye(2) / 12.0
    eigenvalues, eigenvectors = np.linalg.eigh(cov)  # ascending
    b, a = (2.0 * math.sqrt(max(float(v), 0.0)) for v in eigenvalues)
    angle = math.atan2(eigenvectors[1, 1], eigenvectors[0, 1]) % math.pi
    return float(centre[0]), float(centre[1]), a, b, angle


def mask_circumference(mask: np.ndarray | torch.Tensor, pixel_size: float = 1.0) -> float:
    """
    The circumference of the ellipse :func:`fit_ellipse` fits to ``mask``, times ``pixel_size``
    (square pixels); NaN for an empty mask.

    Args:
        mask: ``(H, W)`` array, nonzero inside.
        pixel_size: the side of a pixel, e.g. in mm.
    """
    ellipse = fit_ellipse(mask)
    if ellipse is None:
        return float("nan")
    return ellipse_circumference(ellipse[2], ellipse[3]) * pixel_size


class HeadCircumferenceErrorMetric(CumulativeIterationMetric):
    """
    Absolute head-circumference error in mm (the HC18 challenge's score), per image: an ellipse is fitted to
    the predicted foreground (:func:`fit_ellipse`), its circumference (:func:`ellipse_circumference`) is
    scaled to mm and compared with the reference. ``aggregate()`` returns the mean over the images seen
    since the last ``reset()`` (gathered across ranks in distributed runs); an empty prediction counts as
    a circumference of 0, so a network that finds nothing is charged the whole head.

    The prediction is at the network's size, not the image's: the bundle resizes each image so that its
    long side is ``image_size`` (then pads, which does not scale). A pixel of the prediction therefore
    measures ``pixel_size_mm * long_side / image_size`` mm, with the long side taken from the label's
    ``spatial_shape`` (the size on disk, which MONAI's loader records in the label's metadata).

    Args:
        reference: ``{mask path: (pixel_size_mm, head_circumference_mm)}`` keyed by the label's file name
            (its ``filename_or_obj`` metadata), e.g. from :func:`monai_srb.data.load_head_circumferences`.
        image_size: the long side of the network's input; ``None``: the prediction is at the image's size.
        foreground: the foreground channel of a one-hot ``y_pred``.

    ``y_pred``: ``(batch, classes, H, W)`` one-hot (or ``(batch, 1, H, W)`` binary); ``y``: the labels as
    ``MetaTensor`` with ``filename_or_obj`` and ``spatial_shape`` metadata.

    Raises:
        ValueError: when a label has no file name or its file has no reference.
    """

    def __init__(
        self, reference: Mapping[str, tuple[float, float]], image_size: int | None = None, foreground: int = 1
    ) -> None:
        super().__init__()
        self.reference = {os.path.normpath(str(k)): (float(v[0]), float(v[1])) for k, v in reference.items()}
        self.image_size = image_size
        self.foreground = foreground

    def _lookup(self, y: torch.Tensor, index: int) -> tuple[float, float, Sequence[int]]:
        meta = getattr(y, "meta", {})
        names, shapes = meta.get("filename_or_obj"), meta.get("spatial_shape")
        if names is None or shapes is None:
            raise ValueError(
                "the labels carry no filename_or_obj / spatial_shape metadata (load them with LoadImaged)."
            )
        name = names if isinstance(names, str) else names[index]
        shape = shapes[index] if np.ndim(shapes) > 1 else shapes  # batched or one item's metadata
        key = os.path.normpath(str(name))
        if key not in self.reference:
            raise ValueError(f"no reference head circumference for label {name} ({len(self.reference)} references).")
        pixel_size, hc = self.reference[key]
        return pixel_size, hc, [int(s) for s in np.asarray(torch.as_tensor(shape).cpu()).reshape(-1)]

    def _compute_tensor(  # type: ignore[override]
        self, y_pred: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        if y is None:
            raise ValueError("HeadCircumferenceErrorMetric needs the labels y, for their file names.")
        if y_pred.ndim != 4:
            raise ValueError(f"y_pred must be (batch, classes, H, W), got shape {tuple(y_pred.shape)}.")
        errors = []
        for i in range(y_pred.shape[0]):
            fg = y_pred[i, self.foreground] if y_pred.shape[1] > 1 else y_pred[i, 0]
            pixel_size, hc, shape = self._lookup(y, i)
            if self.image_size is not None:
                pixel_size *= max(shape) / self.image_size
            predicted = mask_circumference(fg > 0.5, pixel_size)
            errors.append(abs((0.0 if math.isnan(predicted) else predicted) - hc))
        return torch.tensor(errors, dtype=torch.float64, device=y_pred.device).unsqueeze(1)

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor) or data.numel() == 0:
            return torch.tensor(float("nan"))
        return data.float().mean()
