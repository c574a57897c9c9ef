"""The embedded-Gaussian non-local block, Wang et al., "Non-local Neural Networks", CVPR 2018."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.layers.factories import Conv, Pool
from torch import nn

from monai_srb.blocks._block_parts import check_block_input, inner_width, zero_init_tail
from monai_srb.utils.sizes import check_positive_int, check_spatial_dims

__all__ = ["NonLocalBlock"]


class NonLocalBlock(nn.Module):
    """
    Embedded-Gaussian non-local block (the paper's Eqn. 1, 3 and 6)::

        y_i = sum_j softmax_j(theta(x_i)^T phi(x_j)) g(x_j)
        z_i = x_i + norm(W_z y_i)

    ``theta``, ``phi`` and ``g`` are 1x1 convs C -> ``inter_channels``; ``W_z`` is a 1x1 conv back to C
    followed by ``norm``. The softmax runs over all positions ``j``, so every output location sees every
    input location: the global receptive field the Spectral Residual Block is compared against.

    As in the paper, the last norm's weight (gamma) and bias start at zero (with no affine norm, ``W_z``
    starts at zero instead), so the block is exactly the identity at initialisation and can replace an
    SRB whose ``alpha`` is 0.

    The pairwise term costs memory proportional to N * M (N positions, M = N or N / 2**spatial_dims with
    ``sub_sample``). It goes through ``scaled_dot_product_attention`` with ``scale=1`` (the paper has no
    ``1 / sqrt(d)``), which on GPU can use kernels that never store the N x M matrix.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        in_channels: number of input channels C.
        inter_channels: channels of the embeddings ``theta``, ``phi``, ``g``. Defaults to
            ``max(in_channels // 2, 1)``, the paper's bottleneck.
        sub_sample: max-pool (kernel 2) the outputs of ``phi`` and ``g``, the paper's trick that divides the
            pairwise cost by 2**spatial_dims.
        norm: norm after ``W_z``, a MONAI norm name or (name, args) for ``get_norm_layer``, e.g.
            ``("group", {"num_groups": 8})``; ``None`` for no norm. The paper uses batch norm.

    Raises:
        ValueError: when ``spatial_dims`` is not 2 or 3, or ``in_channels`` or ``inter_channels`` is below 1;
            in ``forward``, when the input does not have ``in_channels`` channels and ``spatial_dims``
            spatial axes.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        inter_channels: int | None = None,
        sub_sample: bool = False,
        norm: str | tuple | None = "batch",
    ) -> None:
        super().__init__()
        spatial_dims = check_spatial_dims(spatial_dims)
        in_channels = check_positive_int(in_channels, "in_channels")
        inter_channels = inner_width(inter_channels, in_channels, 2, "inter_channels")

        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.inter_channels = inter_channels

        conv = Conv[Conv.CONV, spatial_dims]
        self.theta = conv(in_channels, inter_channels, kernel_size=1)
        # phi's bias adds theta_i . b to every logit of row i, which the softmax over j cancels.
        self.phi = conv(in_channels, inter_channels, kernel_size=1, bias=False)
        self.g = conv(in_channels, inter_channels, kernel_size=1)
        # ceil_mode keeps the last row/slice of an odd-sized input in the pooled phi and g.
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2, ceil_mode=True) if sub_sample else nn.Identity()
        self.norm, self.w_z = zero_init_tail(spatial_dims, inter_channels, in_channels, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: in shape (batch, in_channels, spatial_1, spatial_2[, spatial_3]).

        Returns:
            tensor of the same shape as ``x``.
        """
        check_block_input(x, self.spatial_dims, self.in_channels, "NonLocalBlock")
        theta = self.theta(x).flatten(2).transpose(1, 2)  # (B, N, inter)
        phi = self.pool(self.phi(x)).flatten(2).transpose(1, 2)  # (B, M, inter)
        g = self.pool(self.g(x)).flatten(2).transpose(1, 2)  # (B, M, inter)
        y = F.scaled_dot_product_attention(theta, phi, g, scale=1.0)  # (B, N, inter)
        y = y.transpose(1, 2).reshape([x.shape[0], self.inter_channels] + list(x.shape[2:]))
        return x + self.norm(self.w_z(y))
