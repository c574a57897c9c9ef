"""The double attention block, Chen et al., "A^2-Nets: Double Attention Networks", NeurIPS 2018."""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Conv
from torch import nn

from monai_srb.blocks._block_parts import check_block_input, inner_width, zero_init_tail
from monai_srb.utils.sizes import check_positive_int, check_spatial_dims

__all__ = ["DoubleAttentionBlock"]


class DoubleAttentionBlock(nn.Module):
    """
    A^2 double attention block: gather the whole input into a few global descriptors, then distribute
    them back to every position (the paper's Eqn. 3-5)::

        A = conv_a(x)                      (m, N)  features
        B = softmax_positions(conv_b(x))   (n, N)  attention maps
        V = softmax_channels(conv_v(x))    (n, N)  attention vectors
        G = A B^T                          (m, n)  gather: n global descriptors
        Z = G V                            (m, N)  distribute
        y = x + norm(conv_out(Z))

    with 1x1 convs throughout, N positions, m = ``value_channels``, n = ``key_channels``. Each output
    location depends on every input location through ``G``, at a cost linear in N (no N x N matrix).

    The last norm's weight (gamma) and bias start at zero (with no affine norm, ``conv_out`` starts at zero
    instead), so the block is exactly the identity at initialisation and can replace a Spectral Residual
    Block whose ``alpha`` is 0.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        in_channels: number of input channels C.
        key_channels: the paper's n, the number of attention maps in ``B`` and of global descriptors that
            each attention vector in ``V`` chooses from. Defaults to ``max(in_channels // 4, 1)``.
        value_channels: the paper's m, the width of the features ``A`` and so of each global descriptor.
            Defaults to ``max(in_channels // 4, 1)``.
        norm: norm after ``conv_out``, a MONAI norm name or (name, args) for ``get_norm_layer``, e.g.
            ``("group", {"num_groups": 8})``; ``None`` for no norm.

    Raises:
        ValueError: when ``spatial_dims`` is not 2 or 3, or ``in_channels``, ``key_channels`` or
            ``value_channels`` is below 1; in ``forward``, when the input does not have ``in_channels``
            channels and ``spatial_dims`` spatial axes.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        key_channels: int | None = None,
        value_channels: int | None = None,
        norm: str | tuple | None = "batch",
    ) -> None:
        super().__init__()
        spatial_dims = check_spatial_dims(spatial_dims)
        in_channels = check_positive_int(in_channels, "in_channels")
        key_channels = inner_width(key_channels, in_channels, 4, "key_channels")
        value_channels = inner_width(value_channels, in_channels, 4, "value_channels")

        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.key_channels = key_channels
        self.value_channels = value_channels

        conv = Conv[Conv.CONV, spatial_dims]
        self.conv_a = conv(in_channels, value_channels, kernel_size=1)
        # A per-map bias is constant over the positions that B's softmax normalises over, so it cancels.
        self.conv_b = conv(in_channels, key_channels, kernel_size=1, bias=False)
        self.conv_v = conv(in_channels, key_channels, kernel_size=1)
        self.norm, self.conv_out = zero_init_tail(spatial_dims, value_channels, in_channels, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: in shape (batch, in_channels, spatial_1, spatial_2[, spatial_3]).

        Returns:
            tensor of the same shape as ``x``.
        """
        check_block_input(x, self.spatial_dims, self.in_channels, "DoubleAttentionBlock")
        features = self.conv_a(x).flatten(2)  # (B, m, N)
        attention_maps = torch.softmax(self.conv_b(x).flatten(2), dim=2)  # (B, n, N)
        attention_vectors = torch.softmax(self.conv_v(x).flatten(2), dim=1)  # (B, n, N)
        global_descriptors = torch.bmm(features, attention_maps.transpose(1, 2))  # (B, m, n)
        z = torch.bmm(global_descriptors, attention_vectors)  # (B, m, N)
        z = z.reshape([x.shape[0], self.value_channels] + list(x.shape[2:]))
        return x + self.norm(self.conv_out(z))
