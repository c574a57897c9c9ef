"""Separable matrix transforms ``f(X_c) = X_c x_1 M_1 x_2 M_2 [x_3 M_3]`` with orthogonal ``M_i``."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import torch

from monai_srb.spectral.base import SpectralTransform
from monai_srb.utils.sizes import check_spatial_size

__all__ = ["SeparableMatrixTransform", "mode_product"]


def mode_product(x: torch.Tensor, matrix: torch.Tensor, axis: int) -> torch.Tensor:
    """
    Multiply ``matrix`` (n x n) along tensor ``axis`` of ``x``: ``out[..., i, ...] = sum_j M[i, j] x[..., j, ...]``.

    The tensor is viewed as (leading, n, trailing) so the product is one batched matmul with no
    transpose copies; for the last axis it is ``x @ M^T``.
    """
    n = x.shape[axis]
    if axis == x.ndim - 1:
        return torch.matmul(x, matrix.t())
    trailing = 1
    for s in x.shape[axis + 1 :]:
        trailing *= s
    out = torch.matmul(matrix, x.reshape(-1, n, trailing))
    return out.reshape(x.shape)


class SeparableMatrixTransform(SpectralTransform):
    """
    Base of the separable orthogonal transforms (AOM, DCT): one ``n_i`` x ``n_i`` orthogonal matrix per
    spatial axis, applied to every channel. In 2D, ``f(X_c) = M_1 X_c M_2^T``, which is the paper's
    ``P X_c Q`` with ``P = M_1`` and ``Q = M_2^T``. Being orthogonal, the inverse multiplies by the
    transposes. The spectrum keeps the channel count and the spatial size.

    Subclasses provide ``matrices(spatial_size)``. The spectrum's entries are basis indices (the default
    :class:`monai_srb.spectral.base.FrequencyGrid`).

    Args:
        spatial_size: spatial size the transform is built for, 2 or 3 positive entries.

    Raises:
        ValueError: when ``spatial_size`` does not have 2 or 3 entries, each an int of at least 1 (``0``
            or ``16.7`` is rejected, not rounded).
    """

    def __init__(self, spatial_size: Sequence[int]) -> None:
        super().__init__()
        if isinstance(spatial_size, str) or not isinstance(spatial_size, Sequence) or len(spatial_size) not in (2, 3):
            raise ValueError(f"spatial_size must have 2 or 3 positive int entries, got {spatial_size!r}.")
        self.spatial_size: list[int] = check_spatial_size(spatial_size, len(spatial_size))
        self.spatial_dims = len(self.spatial_size)

    @classmethod
    def create(cls, spatial_dims: int, spatial_size: list[int], **kwargs: Any) -> SeparableMatrixTransform:
        return cls(spatial_size, **kwargs)

    @abstractmethod
    def matrices(self, spatial_size: list[int]) -> list[torch.Tensor]:
        """The orthogonal matrix of each spatial axis for an input of ``spatial_size``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: in shape (batch, channels, spatial_1, spatial_2[, spatial_3]).

        Returns:
            the spectrum, same shape as ``x``.
        """
        for axis, m in enumerate(self.matrices(list(x.shape[2:]))):
            x = mode_product(x, m.to(x.dtype), axis + 2)
        return x

    def inverse(self, z: torch.Tensor, spatial_size: list[int]) -> torch.Tensor:
        """
        Args:
            z: spectrum in shape (batch, channels, *spatial_size).
            spatial_size: spatial size of the signal to recover.

        Returns:
            tensor in shape (batch, channels, *spatial_size).
        """
        for axis, m in enumerate(self.matrices(spatial_size)):
            z = mode_product(z, m.t().to(z.dtype), axis + 2)
        return z
