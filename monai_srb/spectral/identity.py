"""
The ablation control of SRB_F: ``f`` is the identity (SRB_I), so the block keeps SRB_F's ``phi``, parameter count
and ``alpha`` but mixes nothing across positions; its branch's receptive field is one pixel.
"""

from __future__ import annotations

import math

import torch

from monai_srb.spectral.base import SpectralTransform
from monai_srb.utils.sizes import check_spatial_dims

__all__ = ["IdentityTransform"]


class IdentityTransform(SpectralTransform):
    """
    The identity as a "transform": the control that separates what an SRB adds by seeing the whole image from
    what it adds by its capacity. SRB_F with this ``f`` is SRB_I: the same ``phi`` applied at every pixel on its
    own, so a gradient from one output pixel of the branch reaches only that input pixel (in eval mode; batch
    statistics in training couple the batch as they do in every block).

    It is built to have exactly SRB_F's parameters at the same width:

    - ``channel_factor`` is 2, as for the FFT's real and imaginary parts: each channel becomes an interleaved
      pair ``(x, x) / sqrt(2)``, and the inverse is the adjoint ``(a + b) / sqrt(2)``, so ``f^-1(f(x)) = x`` and
      ``f`` keeps the norm (the spectrum's scale is the FFT's). ``phi``'s grouped 1x1 convs and norms then have
      SRB_F's shapes; as the two parts of a pair hold the same values, their weights act through their sums.
    - The spectral ReLU's per-position ``W``, ``B`` are stored on the grid of the FFT's half spectrum, the last
      axis ``n // 2 + 1`` long (:meth:`table_size`), and resampled linearly to the input's positions, as every
      SRB resamples its tables to the input's size.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.

    Raises:
        ValueError: when ``spatial_dims`` is not 2 or 3.
    """

    channel_factor: int = 2

    def __init__(self, spatial_dims: int = 2) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)

    def table_size(self, spatial_size: list[int]) -> list[int]:
        """The FFT's half-spectrum size of ``spatial_size``: SRB_I's spectral ReLU stores as many entries as SRB_F's."""
        return list(spatial_size[:-1]) + [spatial_size[-1] // 2 + 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: in shape (batch, channels, *spatial_size).

        Returns:
            ``(x, x) / sqrt(2)`` per channel, interleaved: (batch, 2 * channels, *spatial_size).
        """
        z = torch.stack([x, x], dim=2) * (1.0 / math.sqrt(2.0))
        return z.flatten(1, 2)

    def inverse(self, z: torch.Tensor, spatial_size: list[int]) -> torch.Tensor:
        """
        Args:
            z: in shape (batch, 2 * channels, *spatial_size).
            spatial_size: the spatial size of the signal (``z``'s own).

        Returns:
            the sum of each interleaved pair over ``sqrt(2)``: (batch, channels, *spatial_size).
        """
        pairs = z.reshape([z.shape[0], z.shape[1] // 2, 2] + list(z.shape[2:]))
        return pairs.sum(2) * (1.0 / math.sqrt(2.0))
