"""
monai_srb: Spectral Residual Blocks (Li et al., ICME 2020) for MONAI.

- :mod:`monai_srb.spectral`: local-to-global transforms ``f`` (FFT, adaptive orthogonal matrices, DCT).
- :mod:`monai_srb.blocks`: the Spectral Residual Block, its spectral ReLU, and the Non-local and A²-Net
  blocks the paper compares it with.
- :mod:`monai_srb.nets`: the paper's networks (SRBUNet, SRBSPMNet, SRBResNet50, SRBDenseNet121) and
  ``insert_blocks`` for any MONAI network.
- :mod:`monai_srb.data`: checked data lists, seeded splits and synthetic data sets for the bundles.
- :mod:`monai_srb.metrics`: the paper's scores that MONAI lacks.
- :mod:`monai_srb.utils`: the size rules every subpackage checks its arguments and inputs with.
- :mod:`monai_srb.handlers`: Ignite training glue (metrics, figures, checkpoints).
- :mod:`monai_srb.tracking`: MLflow tracking: the bundles' ``SRBMLFlowHandler`` and its parts.
- :mod:`monai_srb.bundle`: the named functions the bundle configs call: override checks, the ``output_dir`` lock,
  data roots and splits, the DDP steps, the loss and the NaN stop.
- :mod:`monai_srb.complexity`, :mod:`monai_srb.export`: tools behind ``monai-srb complexity`` / ``export``,
  imported on use.

The package namespace holds only what a user calls: the block, the three transforms, the four networks,
``insert_blocks`` and ``retract_orthogonal_``; everything else is imported from its subpackage. Importing
the package imports every subpackage, so every public class and function is resolvable by short name in a
MONAI bundle config (``"imports": ["$import monai_srb"]``, ``"_target_": "SRBMLFlowHandler"``): MONAI's
``ComponentLocator`` scans the loaded modules whose names start with ``monai``.
"""

from __future__ import annotations

# The subpackages are imported for MONAI's ComponentLocator, which finds short _target_ names in loaded modules only.
from monai_srb import (  # noqa: F401
    blocks,
    bundle,
    data,
    handlers,
    metrics,
    nets,
    spectral,
    tracking,
)
from monai_srb.blocks import SpectralResidualBlock
from monai_srb.nets import SRBDenseNet121, SRBResNet50, SRBSPMNet, SRBUNet, insert_blocks
from monai_srb.spectral import AdaptiveOrthogonalTransform, CosineTransform, FourierTransform, retract_orthogonal_

__version__ = "0.1.0"
__all__ = [
    "AdaptiveOrthogonalTransform",
    "CosineTransform",
    "FourierTransform",
    "SRBDenseNet121",
    "SRBResNet50",
    "SRBSPMNet",
    "SRBUNet",
    "SpectralResidualBlock",
    "insert_blocks",
    "retract_orthogonal_",
]
