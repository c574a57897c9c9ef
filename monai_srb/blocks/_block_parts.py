"""
The parts the blocks share around their own computation: the attention blocks' (non-local, A^2) default widths
and the output tail that makes them the identity at initialisation, and every block's check of its input.
"""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Conv
from monai.networks.layers.utils import get_norm_layer
from torch import nn

from monai_srb.utils.sizes import check_positive_int

__all__ = ["check_block_input", "inner_width", "zero_init_tail"]


def inner_width(value: int | None, in_channels: int, divisor: int, name: str) -> int:
    """
    ``value`` checked as a positive int, or ``max(in_channels // divisor, 1)`` when it is ``None``.

    Args:
        value: the width the caller asked for, or ``None``.
        in_channels: the block's input channels.
        divisor: the default bottleneck ratio.
        name: the argument's name, for the error message.

    Raises:
        ValueError: when ``value`` is not ``None`` and not an integer of at least 1.
    """
    return max(in_channels // divisor, 1) if value is None else check_positive_int(value, name)


def zero_init_tail(
    spatial_dims: int, inner_channels: int, in_channels: int, norm: str | tuple | None
) -> tuple[nn.Module, nn.Module]:
    """
    The block's last two layers, a 1x1 conv ``inner_channels -> in_channels`` then ``norm``, set so that their
    output is zero and the residual block ``x + norm(conv(y))`` starts as the identity: the norm's weight
    (gamma) and bias are zero, as in the non-local paper; with no affine norm the conv's weights are.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        inner_channels: channels the conv takes.
        in_channels: channels the conv returns, those of the block's input.
        norm: a MONAI norm name or (name, args) for ``get_norm_layer``; ``None`` for no norm.

    Returns:
        ``(norm, conv)``: the norm first, so that assigning them in this order keeps the blocks' registration
        (and state dict) order.
    """
    norm_layer = nn.Identity() if norm is None else get_norm_layer(norm, spatial_dims, in_channels)
    has_norm = not isinstance(norm_layer, nn.Identity)
    # A bias before a norm is cancelled by the norm's mean subtraction.
    conv = Conv[Conv.CONV, spatial_dims](inner_channels, in_channels, kernel_size=1, bias=not has_norm)
    gamma = getattr(norm_layer, "weight", None)
    if isinstance(gamma, nn.Parameter):
        nn.init.zeros_(gamma)
        nn.init.zeros_(norm_layer.bias)
    else:
        # Without an affine norm the zero has to come from the conv; a norm of an all-zero map is zero.
        nn.init.zeros_(conv.weight)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)
    return norm_layer, conv


def check_block_input(x: torch.Tensor, spatial_dims: int, in_channels: int, block_name: str) -> None:
    """
    Check that ``x`` is (batch, ``in_channels``, ``spatial_dims`` spatial axes); TorchScript compiles it.

    Args:
        x: the block's input.
        spatial_dims: the block's number of spatial dimensions.
        in_channels: the block's input channels.
        block_name: the block's class name, for the error message.

    Raises:
        ValueError: otherwise, naming ``block_name``, the expected layout and the shape received.
    """
    if x.ndim != spatial_dims + 2 or x.shape[1] != in_channels:
        raise ValueError(
            f"{block_name} expects input (batch, {in_channels}, {spatial_dims} spatial dims), "
            f"got shape {list(x.shape)}."
        )
