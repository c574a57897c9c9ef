"""
monai_srb: Spectral Residual Blocks (Li et al., ICME 2020) for MONAI.

- :mod:`monai_srb.spectral`: local-to-global transforms ``f`` (FFT, adaptive orthogonal matrices, DCT).
- :mod:`monai_srb.blocks`: the Spectral Residual Block, its spectral ReLU, and the Non-local and A²-Net
  blocks the paper compares it with.
- :mod:`monai_srb.nets`: the paper's networks (SRBUNet, SRBSPMNet, SRBResNet50, SRBDenseNet121) and
  ``insert_blocks`` for any MONAI network.
- :mod:`monai_srb.handlers`: Ignite/MLflow training glue.
- :mod:`monai_srb.complexity`: parameters and FLOPs including FFTs (``monai-srb complexity``).

Importing the package makes every public class and function resolvable by short name in a MONAI bundle
config (``"imports": ["$import monai_srb"]``, ``"_target_": "SpectralResidualBlock"``): MONAI's
``ComponentLocator`` scans the loaded modules whose names start with ``monai``.
"""

from __future__ import annotations

from monai_srb import blocks, handlers, nets, spectral
from monai_srb.blocks import *  # noqa: F401,F403
from monai_srb.handlers import *  # noqa: F401,F403
from monai_srb.nets import *  # noqa: F401,F403
from monai_srb.spectral import *  # noqa: F401,F403

__version__ = "0.1.0"
__all__ = blocks.__all__ + spectral.__all__ + nets.__all__ + handlers.__all__
