"""A grouped 1x1 convolution computed as one batched matmul."""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Conv
from torch import nn

__all__ = ["GroupedPointwiseConv"]


class GroupedPointwiseConv(nn.Module):
    """
    Grouped 1x1 convolution without bias, computed as ``W_g @ X_g`` for every group at once: one
    batched matmul on a view of the input. PyTorch's CPU convolution runs a grouped 1x1 conv with few
    channels per group group by group (or through oneDNN with a layout reorder), several times slower
    than the matmul on the spectral bottleneck's sizes; the weight, its initialisation and the result are
    those of ``Conv[Conv.CONV, spatial_dims](in_channels, out_channels, 1, groups=groups, bias=False)``.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: input channels, divisible by ``groups``.
        out_channels: output channels, divisible by ``groups``.
        groups: number of groups.

    Raises:
        ValueError: when ``groups`` does not divide both channel counts.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, groups: int = 1) -> None:
        super().__init__()
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups must divide in_channels={in_channels} and out_channels={out_channels}, got {groups}."
            )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        conv = Conv[Conv.CONV, spatial_dims](in_channels, out_channels, kernel_size=1, groups=groups, bias=False)
        self.weight = conv.weight  # (out_channels, in_channels // groups, 1, ...): a conv's shape and init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: in shape (batch, in_channels, spatial_1[, spatial_2, ...]).

        Returns:
            tensor in shape (batch, out_channels, spatial_1[, spatial_2, ...]).
        """
        g = self.groups
        w = self.weight.reshape(g, self.out_channels // g, self.in_channels // g).to(x.dtype)
        out = torch.matmul(w, x.reshape(x.shape[0], g, self.in_channels // g, -1))
        return out.reshape([x.shape[0], self.out_channels] + list(x.shape[2:]))
