"""The DCT-II as a fixed orthogonal local-to-global transform (the paper's third named option)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from monai_srb.spectral.matrix_transform import SeparableMatrixTransform

__all__ = ["CosineTransform", "dct_matrix"]


def dct_matrix(n: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> torch.Tensor:
    """
    The orthonormal DCT-II matrix ``D`` (``n`` x ``n``): ``D @ x`` is ``scipy.fft.dct(x, norm="ortho")``.

    Args:
        n: transform length, at least 1.
        dtype: dtype of the returned matrix.
        device: device of the returned matrix.
    """
    if n == 0:
        return torch.zeros(0, 0, dtype=dtype, device=device)
    k = torch.arange(n, dtype=torch.float64, device=device).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64, device=device).unsqueeze(0)
    # the scale as a tensor op: math.sqrt of a symbolic size makes torch.export fix the size
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * torch.sqrt(2.0 / torch.scalar_tensor(n, dtype=torch.float64))
    d[0] = d[0] / math.sqrt(2.0)
    return d.to(dtype)


class CosineTransform(SeparableMatrixTransform):
    """
    Separable orthonormal DCT-II over the spatial axes: ``f(X_c) = D_1 X_c D_2^T`` in 2D.

    The DCT matrices are fixed buffers built for ``spatial_size``; an input of another size gets DCT
    matrices of its own size, computed on the fly, because the DCT is defined for every length.

    Args:
        spatial_size: spatial size the transform is built for, 2 or 3 entries.

    Raises:
        ValueError: when ``spatial_size`` does not have 2 or 3 positive entries.
    """

    def __init__(self, spatial_size: Sequence[int]) -> None:
        super().__init__(spatial_size)
        # Named buffers rather than a list keep the module scriptable; in 2D ``dct_2`` is left empty.
        sizes = self.spatial_size + [0] * (3 - self.spatial_dims)
        for i, n in enumerate(sizes):
            self.register_buffer(f"dct_{i}", dct_matrix(n), persistent=n > 0)

    def matrices(self, spatial_size: list[int]) -> list[torch.Tensor]:
        built: list[torch.Tensor] = [self.dct_0, self.dct_1, self.dct_2][: self.spatial_dims]
        out: list[torch.Tensor] = []
        # Under torch.compile / torch.export the matrices are built for the input's size in the graph: comparing
        # the size with the buffer's would fix the graph to one size.
        exact = not torch.compiler.is_compiling()
        for m, n in zip(built, spatial_size):
            out.append(m if exact and m.shape[0] == n else dct_matrix(n, m.dtype, m.device))
        return out
