"""Local-to-global transforms ``f`` and their inverses ``f^-1`` (the paper's Eqn. 1 and 7), registered by name."""

from __future__ import annotations

from monai_srb.spectral.adaptive_orthogonal import AdaptiveOrthogonalTransform, orthogonal_qr, retract_orthogonal_
from monai_srb.spectral.base import FrequencyGrid, SpectralTransform, holds_fixed_size_transform
from monai_srb.spectral.cosine import CosineTransform, dct_matrix
from monai_srb.spectral.fourier import FourierTransform, dft_matrices
from monai_srb.spectral.identity import IdentityTransform
from monai_srb.spectral.matrix_transform import SeparableMatrixTransform, mode_product
from monai_srb.spectral.registry import TRANSFORMS, register_transform

__all__ = [
    "AdaptiveOrthogonalTransform",
    "CosineTransform",
    "FourierTransform",
    "FrequencyGrid",
    "IdentityTransform",
    "SeparableMatrixTransform",
    "SpectralTransform",
    "TRANSFORMS",
    "dct_matrix",
    "dft_matrices",
    "holds_fixed_size_transform",
    "mode_product",
    "orthogonal_qr",
    "register_transform",
    "retract_orthogonal_",
]
