"""Network blocks: the Spectral Residual Block and the blocks the paper compares it with."""

from __future__ import annotations

from monai_srb.blocks.double_attention import DoubleAttentionBlock
from monai_srb.blocks.factory import (
    BLOCK_TYPES,
    block_name,
    block_names,
    check_block,
    is_block,
    make_block,
    needs_spatial_size,
    register_block,
    unregister_block,
)
from monai_srb.blocks.nonlocal_block import NonLocalBlock
from monai_srb.blocks.spectral_relu import SpectralReLU
from monai_srb.blocks.spectral_residual import SpectralResidualBlock, SpectralSubNetwork

__all__ = [
    "BLOCK_TYPES",
    "DoubleAttentionBlock",
    "NonLocalBlock",
    "SpectralReLU",
    "SpectralResidualBlock",
    "SpectralSubNetwork",
    "block_name",
    "block_names",
    "check_block",
    "is_block",
    "make_block",
    "needs_spatial_size",
    "register_block",
    "unregister_block",
]
