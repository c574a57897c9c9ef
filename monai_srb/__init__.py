"""
monai_srb: Spectral Residual Blocks (Li et al., ICME 2020) for MONAI.

Importing the package makes every public block resolvable by short name in a MONAI bundle config
(``"imports": ["$import monai_srb"]``, ``"_target_": "SpectralResidualBlock"``): MONAI's
``ComponentLocator`` scans the loaded modules whose names start with ``monai``.
"""

from __future__ import annotations

from monai_srb import blocks, spectral
from monai_srb.blocks import *  # noqa: F401,F403
from monai_srb.spectral import *  # noqa: F401,F403

__version__ = "0.1.0"
__all__ = blocks.__all__ + spectral.__all__
