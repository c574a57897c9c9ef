"""Build any of the paper's blocks by name, so networks and bundle configs can swap them freely."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from monai_srb.blocks.double_attention import DoubleAttentionBlock
from monai_srb.blocks.nonlocal_block import NonLocalBlock
from monai_srb.blocks.spectral_residual import SpectralResidualBlock

__all__ = ["BLOCK_NAMES", "make_block"]

BLOCK_NAMES = ("srb_fft", "srb_aom", "srb_dct", "nonlocal", "double_attention")


def make_block(
    name: str, spatial_dims: int, in_channels: int, spatial_size: Sequence[int] | None = None, **kwargs: Any
) -> nn.Module:
    """
    Create a residual block that is the identity at initialisation.

    Args:
        name: ``"srb_fft"``, ``"srb_aom"``, ``"srb_dct"`` (:class:`SpectralResidualBlock` with that
            transform), ``"nonlocal"`` (:class:`NonLocalBlock`) or ``"double_attention"``
            (:class:`DoubleAttentionBlock`).
        spatial_dims: number of spatial dimensions, 2 or 3.
        in_channels: channels of the feature map the block sees.
        spatial_size: spatial size of that feature map (needed by ``"srb_aom"``; the spectral ReLU grid
            of the other SRBs; ignored by the attention blocks).
        kwargs: further constructor arguments of the block.

    Raises:
        ValueError: on an unknown ``name``.
    """
    if name.startswith("srb_") and name in BLOCK_NAMES:
        return SpectralResidualBlock(
            spatial_dims, in_channels, transform=name[4:], spatial_size=spatial_size, **kwargs
        )
    if name == "nonlocal":
        return NonLocalBlock(spatial_dims, in_channels, **kwargs)
    if name == "double_attention":
        return DoubleAttentionBlock(spatial_dims, in_channels, **kwargs)
    raise ValueError(f"block must be one of {BLOCK_NAMES}, got {name!r}.")
