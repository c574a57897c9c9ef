"""The paper's spectral ReLU: ``max(W[i,j] Z[i,j,k] + B[i,j], 0)`` with a learnable W, B per frequency."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from monai_srb.spectral.base import FrequencyGrid
from monai_srb.utils.sizes import check_spatial_size

__all__ = ["SpectralReLU"]


class SpectralReLU(nn.Module):
    """
    Spectral ReLU (the paper's Eqn. 5): ``max(W[i, j] * Z[i, j, k] + B[i, j], 0)``, where ``(i, j)``
    indexes a frequency and ``k`` a channel: one learnable scale ``W`` (init 1) and shift ``B``
    (init 0) per frequency, shared by all channels.

    ``W`` and ``B`` live on the spectral grid of ``spatial_size``. An input of another spatial size
    uses ``W`` and ``B`` linearly resampled to its grid, matching entries by the normalised frequency
    ``grid`` gives them, in training (gradients reach the stored tables) and in inference. Along an axis
    the stored entries are taken in frequency order, so that the grid's order (FFT order, say) never
    blends its two ends; a frequency beyond the stored range takes the value at its end.

    Args:
        spatial_size: spatial size of the signal whose spectrum the layer sees, 2 or 3 entries.
        grid: where the spectrum's entries sit in frequency, the transform's ``frequency_grid()``; default:
            basis indices on a grid of ``spatial_size`` (DCT, AOM).

    Raises:
        ValueError: when ``spatial_size`` does not have 2 or 3 entries, each an int of at least 1, or when
            the grid's indices along an axis are not consecutive integers.
    """

    def __init__(self, spatial_size: Sequence[int], grid: FrequencyGrid | None = None) -> None:
        super().__init__()
        if isinstance(spatial_size, str) or not isinstance(spatial_size, Sequence) or len(spatial_size) not in (2, 3):
            raise ValueError(f"spatial_size must have 2 or 3 positive int entries, got {spatial_size!r}.")
        self.spatial_size: list[int] = check_spatial_size(spatial_size, len(spatial_size))
        self.grid = FrequencyGrid() if grid is None else grid
        indices = self.grid.indices(self.spatial_size)
        for axis in indices:
            if sorted(axis) != list(range(min(axis), min(axis) + len(axis))):
                raise ValueError(f"the grid's indices along an axis must be consecutive integers, got {axis}.")
        # Per axis, the stored entries in frequency order and the lowest frequency index.
        self.order = [sorted(range(len(axis)), key=axis.__getitem__) for axis in indices]
        self.start = [min(axis) for axis in indices]
        shape = [len(axis) for axis in indices]
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))

    def _lerp_indices(
        self, axis: int, spatial_size: list[int], device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The stored entries each frequency index of ``axis`` (``spatial_size`` signal) lies between, and how far."""
        src, order, size = self.spatial_size[axis], self.order[axis], spatial_size[axis]
        k = self.grid.index_tensor(spatial_size, axis, device).to(torch.float64)
        # Position among the stored entries in frequency order: index k of n is the normalised frequency k / n.
        pos = (k * src / size - self.start[axis]).clamp(0, len(order) - 1)
        lo = pos.floor()
        hi = torch.clamp(lo + 1, max=len(order) - 1)
        frac = (pos - lo).float()
        entries = torch.tensor(order, dtype=torch.long, device=device)
        return entries[lo.long()], entries[hi.long()], frac

    def resampled(self, spatial_size: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``W`` and ``B`` on the spectral grid of an input of ``spatial_size``."""
        # Under torch.compile / torch.export a size compared with the stored one would fix the graph to one side
        # of the comparison; there every axis takes the resampling path, which at an equal size gives the stored
        # entries exactly (positions k * n / n, weights 0).
        exact = not torch.compiler.is_compiling()
        if exact and spatial_size == self.spatial_size:
            return self.weight, self.bias
        if len(spatial_size) != len(self.spatial_size):
            raise ValueError(f"SpectralReLU expects {len(self.spatial_size)} spatial dims, got size {spatial_size}.")
        table = torch.stack([self.weight, self.bias])
        for axis in range(len(spatial_size)):
            if exact and self.spatial_size[axis] == spatial_size[axis]:
                continue
            lo, hi, frac = self._lerp_indices(axis, spatial_size, table.device)
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
