"""The paper's spectral ReLU: ``max(W[i,j] Z[i,j,k] + B[i,j], 0)`` with a learnable W, B per frequency."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from monai_srb.spectral.sizes import check_spatial_size

__all__ = ["SpectralReLU"]


def _resample_indices(
    src: int, dst: int, periodic: bool, onesided: bool, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    Linear-interpolation indices that carry a per-frequency table from a length-``src`` signal to a
    length-``dst`` one, matching equal *normalised frequencies* (index k of n is frequency k / n).

    Periodic axes are in FFT order (0, 1, ..., -2, -1): positions are computed in the centred order so
    that the highest positive and negative frequencies are never blended. One-sided axes hold the
    ``n // 2 + 1`` non-negative frequencies of an ``rfft``; other axes are basis indices (DCT, AOM).
    """
    src_len = src // 2 + 1 if onesided else src
    dst_len = dst // 2 + 1 if onesided else dst
    t = torch.arange(dst_len, device=device, dtype=torch.float64)
    if periodic:
        signed = torch.where(t < (dst + 1) // 2, t, t - dst)
        pos = (signed * src / dst + src // 2).clamp(0, src - 1)
    else:
        pos = (t * src / dst).clamp(0, src_len - 1)
    lo = pos.floor()
    hi = torch.clamp(lo + 1, max=src_len - 1)
    frac = (pos - lo).float()
    lo_i, hi_i = lo.long(), hi.long()
    if periodic:
        lo_i = torch.remainder(lo_i - src // 2, src)
        hi_i = torch.remainder(hi_i - src // 2, src)
    return lo_i, hi_i, frac


class SpectralReLU(nn.Module):
    """
    Spectral ReLU (the paper's Eqn. 5): ``max(W[i, j] * Z[i, j, k] + B[i, j], 0)``, where ``(i, j)``
    indexes a frequency and ``k`` a channel: one learnable scale ``W`` (init 1) and shift ``B``
    (init 0) per frequency, shared by all channels.

    ``W`` and ``B`` live on the spectral grid of ``spatial_size``. An input of another spatial size
    uses ``W`` and ``B`` linearly resampled to its grid, matching frequencies by their normalised value,
    in training (gradients reach the stored tables) and in inference.

    Args:
        spatial_size: spatial size of the signal whose spectrum the layer sees, 2 or 3 entries.
        onesided: the spectrum comes from ``rfftn`` (FFT order on every axis but the last, which holds
            ``spatial_size[-1] // 2 + 1`` non-negative frequencies). ``False`` for basis-indexed spectra
            (DCT, AOM) whose grid is ``spatial_size``.

    Raises:
        ValueError: when ``spatial_size`` does not have 2 or 3 entries, each an int of at least 1.
    """

    def __init__(self, spatial_size: Sequence[int], onesided: bool = False) -> None:
        super().__init__()
        if isinstance(spatial_size, str) or not isinstance(spatial_size, Sequence) or len(spatial_size) not in (2, 3):
            raise ValueError(f"spatial_size must have 2 or 3 positive int entries, got {spatial_size!r}.")
        size = check_spatial_size(spatial_size, len(spatial_size))
        self.spatial_size: list[int] = size
        self.onesided = onesided
        grid = size[:-1] + [size[-1] // 2 + 1] if onesided else size
        self.weight = nn.Parameter(torch.ones(grid))
        self.bias = nn.Parameter(torch.zeros(grid))

    def resampled(self, spatial_size: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``W`` and ``B`` on the spectral grid of an input of ``spatial_size``."""
        if spatial_size == self.spatial_size:
            return self.weight, self.bias
        if len(spatial_size) != len(self.spatial_size):
            raise ValueError(f"SpectralReLU expects {len(self.spatial_size)} spatial dims, got size {spatial_size}.")
        table = torch.stack([self.weight, self.bias])
        last = len(spatial_size) - 1
        for axis in range(len(spatial_size)):
            src, dst = self.spatial_size[axis], spatial_size[axis]
            if src == dst:
                continue
            onesided = self.onesided and axis == last
            periodic = self.onesided and axis != last
            lo, hi, frac = _resample_indices(src, dst, periodic, onesided, table.device)
            shape = [1] * table.ndim
            shape[axis + 1] = frac.numel()
            a, b = table.index_select(axis + 1, lo), table.index_select(axis + 1, hi)
            table = torch.lerp(a, b, frac.to(table.dtype).reshape(shape))
        return table[0], table[1]

    def forward(self, z: torch.Tensor, spatial_size: list[int]) -> torch.Tensor:
        """
        Args:
            z: spectrum in shape (batch, channels, *grid), ``grid`` the spectral grid of ``spatial_size``.
            spatial_size: spatial size of the signal ``z`` is the spectrum of.
        """
        weight, bias = self.resampled(spatial_size)
        # In place: addcmul's backward needs its inputs, not its output, and relu's needs only its output.
        return torch.addcmul(bias.to(z.dtype), z, weight.to(z.dtype)).relu_()
