"""The SRB_F local-to-global transform ``f``: an orthonormal real FFT over the spatial axes."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FourierTransform"]


class FourierTransform(nn.Module):
    """
    Orthonormal real FFT of every channel over all spatial axes (the paper's SRB_F transform).

    The half spectrum of ``torch.fft.rfftn(norm="ortho")`` is returned as a real tensor whose real and
    imaginary parts are *interleaved per channel*: channel ``2c`` holds Re(f(X_c)) and ``2c + 1`` holds
    Im(f(X_c)), as in FFC/LaMa's ``FourierUnit``. With that layout a 1x1 convolution with ``groups``
    dividing ``in_channels`` keeps the real and imaginary part of a channel in the same group, so a
    grouped convolution can express complex products. The blocked layout (all real parts, then all
    imaginary parts) would put them in different groups as soon as ``groups`` is even. The layout is
    also a plain view of ``torch.view_as_real``'s trailing pair axis, which lets a consumer work on it
    without materialising the interleaving.

    The FFT always runs in float32 (or float64 for float64 input): cuFFT's half-precision transforms
    only accept power-of-two sizes, and the spectrum of a large image overflows fp16 easily.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.

    Raises:
        ValueError: when ``spatial_dims`` is not 2 or 3.
    """

    channel_factor: int = 2
    onesided: bool = True

    def __init__(self, spatial_dims: int) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        self.spatial_dims = spatial_dims

    def spectral_size(self, spatial_size: list[int]) -> list[int]:
        """Size of the spectral grid for an input of ``spatial_size``: the last axis is one-sided."""
        return list(spatial_size[:-1]) + [spatial_size[-1] // 2 + 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: in shape (batch, channels, spatial_1[, spatial_2, spatial_3]).

        Returns:
            real tensor in shape (batch, 2 * channels, spatial_1[, ...], spatial_last // 2 + 1).
        """
        if x.dtype != torch.float64:
            x = x.float()
        dims = list(range(2, x.ndim))
        z = torch.view_as_real(torch.fft.rfftn(x, dim=dims, norm="ortho"))  # (B, C, *grid, 2)
        z = z.movedim(-1, 2)  # (B, C, 2, *grid)
        return z.reshape([z.shape[0], -1] + list(z.shape[3:]))

    def inverse(self, z: torch.Tensor, spatial_size: list[int]) -> torch.Tensor:
        """
        Args:
            z: interleaved spectrum in shape (batch, 2 * channels, *spectral_size(spatial_size)).
            spatial_size: the spatial size of the signal to recover (the last axis is ambiguous from
                the half spectrum alone).

        Returns:
            real tensor in shape (batch, channels, *spatial_size).
        """
        if z.dtype != torch.float64:
            z = z.float()
        z = z.reshape([z.shape[0], -1, 2] + list(z.shape[2:])).movedim(2, -1).contiguous()
        dims = list(range(2, z.ndim - 1))
        return torch.fft.irfftn(torch.view_as_complex(z), s=spatial_size, dim=dims, norm="ortho")
