"""Network blocks: the Spectral Residual Block and the blocks the paper compares it with."""

from __future__ import annotations

from monai_srb.blocks.spectral_relu import SpectralReLU
from monai_srb.blocks.spectral_residual import SpectralResidualBlock, SpectralSubNetwork

__all__ = ["SpectralReLU", "SpectralResidualBlock", "SpectralSubNetwork"]
