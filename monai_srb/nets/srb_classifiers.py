"""The paper's classifiers: MONAI's ResNet-50 and DenseNet-121 with Spectral Residual Blocks after their last stages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monai.networks.nets import DenseNet121, ResNet
from monai.networks.nets.resnet import ResNetBottleneck, get_inplanes
from monai.utils import ensure_tuple_rep
from torch import nn

from monai_srb.blocks.factory import BLOCK_NAMES
from monai_srb.nets.insertion import insert_blocks

__all__ = ["SRBDenseNet121", "SRBResNet50"]

# Probe input size per axis when no spatial_size is given: the probe then only needs channel counts, and
# DenseNet-121 downsamples by 32.
_PROBE_SIZE = 32


def _probe_shape(
    spatial_dims: int, in_channels: int, block: str, spatial_size: Sequence[int] | int | None
) -> list[int]:
    """The probe input shape for ``spatial_size``; checked before the backbone is built, to fail fast."""
    if block not in BLOCK_NAMES:
        raise ValueError(f"block must be one of {BLOCK_NAMES}, got {block!r}.")
    if spatial_size is None:
        if block == "srb_aom":
            raise ValueError(
                "block='srb_aom' needs spatial_size (the input image size: the AOM matrices are built for the "
                "feature sizes it gives), got None."
            )
        return [1, in_channels] + [_PROBE_SIZE] * spatial_dims
    size = list(ensure_tuple_rep(spatial_size, spatial_dims))
    if not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f"spatial_size must be a positive int or {spatial_dims} positive ints, got {spatial_size}.")
    return [1, in_channels, *size]


def _insert_after_stages(
    network: nn.Module,
    probe_shape: list[int],
    stages: Sequence[str],
    block: str,
    spatial_size: Sequence[int] | int | None,
    block_args: dict[str, Any],
) -> None:
    """Insert ``block`` after each of ``stages``, sized by a probe of ``probe_shape``."""
    if spatial_size is None:
        # Without an image size the SRBs keep their default spectral grid, resampled to any input.
        block_args = {**block_args, "spatial_size": None}
    stages = [stages] if isinstance(stages, str) else list(stages)
    insert_blocks(network, stages, block=block, position="after", example_input=probe_shape, **block_args)


class SRBResNet50(ResNet):
    """
    MONAI's ResNet-50 (``monai.networks.nets.resnet50(spatial_dims, n_input_channels=in_channels,
    num_classes=out_channels)``, never pretrained) with a block, by default SRB_F, after each stage named in
    ``srb_after``. The blocks are the identity at initialisation, so a fresh ``SRBResNet50`` computes what
    the ResNet-50 with the same weights does.

    Each named stage becomes an :class:`~monai_srb.nets.insertion.InsertedBlock`: the state dict keys of a
    stage read ``layer4.module.<ResNet keys>`` and ``layer4.block.<block keys>``.

    Class activation maps: ``target_layers="layer4"`` gives the map after the last SRB (the output of the
    ``InsertedBlock``), ``"layer4.module"`` the map before it; with ``monai.visualize.CAM`` use
    ``fc_layers="fc"``.

    ``torch.jit.trace`` and ``torch.jit.script`` both work; scripting swaps the ``InsertedBlock`` instances
    for their one-tensor form in place (see :class:`~monai_srb.nets.insertion.InsertedBlock`).

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        in_channels: number of input channels.
        out_channels: number of logits, e.g. one per label for multi-label (BCE) training.
        srb_after: stages followed by a block, names of ``named_modules()`` (``"layer1"`` ... ``"layer4"``).
            The paper puts SRB_F after the last two.
        block: ``"srb_fft"``, ``"srb_aom"``, ``"srb_dct"``, ``"nonlocal"`` or ``"double_attention"``.
        spatial_size: the input image size, an int repeated over the spatial dims or one per dim. The blocks
            are built for the feature sizes this input gives (the SRB's spectral grid; required for
            ``"srb_aom"``, which then takes only this input size). ``None``: SRB_F / SRB_DCT keep their
            default spectral grid, resampled to any input.
        block_args: further constructor arguments of the block (``reduction``, ``norm``, ...).

    Raises:
        ValueError: on a bad ``block``, ``srb_after`` or ``spatial_size``, ``"srb_aom"`` without
            ``spatial_size``, and the blocks' own argument errors.

    Example::

        net = SRBResNet50(spatial_dims=2, in_channels=1, out_channels=14)
        logits = net(torch.randn(2, 1, 224, 224))  # (2, 14)
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        srb_after: Sequence[str] = ("layer3", "layer4"),
        block: str = "srb_fft",
        spatial_size: Sequence[int] | int | None = None,
        **block_args: Any,
    ) -> None:
        probe_shape = _probe_shape(spatial_dims, in_channels, block, spatial_size)
        # ResNet-50 exactly as monai.networks.nets.resnet50 builds it, so weights and seeds carry over.
        super().__init__(
            block=ResNetBottleneck,
            layers=[3, 4, 6, 3],
            block_inplanes=get_inplanes(),
            spatial_dims=spatial_dims,
            n_input_channels=in_channels,
            num_classes=out_channels,
        )
        _insert_after_stages(self, probe_shape, srb_after, block, spatial_size, block_args)


class SRBDenseNet121(DenseNet121):
    """
    MONAI's ``DenseNet121(spatial_dims, in_channels, out_channels)`` (never pretrained) with a block, by
    default SRB_F, after each stage named in ``srb_after``: by default the paper's two SRB_F after the last
    two dense blocks (``features.denseblock3``, before ``transition3``, and ``features.denseblock4``, before
    ``norm5``). The blocks are the identity at initialisation, so a fresh ``SRBDenseNet121`` computes what
    the DenseNet-121 with the same weights does.

    Each named stage becomes an :class:`~monai_srb.nets.insertion.InsertedBlock`: the state dict keys read
    ``features.denseblock4.module.<DenseNet keys>`` and ``features.denseblock4.block.<block keys>``.

    Class activation maps: ``target_layers="class_layers.relu"`` (MONAI's usual DenseNet target) gives the
    map after the last SRB and ``norm5``; with ``monai.visualize.CAM`` use ``fc_layers="class_layers.out"``.
    ``"features.denseblock4"`` gives the map right after the SRB, before ``norm5``.

    ``torch.jit.trace`` and ``torch.jit.script`` both work; scripting swaps the ``InsertedBlock`` instances
    for their one-tensor form in place (see :class:`~monai_srb.nets.insertion.InsertedBlock`).

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        in_channels: number of input channels.
        out_channels: number of logits, e.g. one per label for multi-label (BCE) training.
        srb_after: stages followed by a block, names of ``named_modules()`` (``"features.denseblock1"`` ...
            ``"features.denseblock4"``, ``"features.transition1"`` ...).
        block: ``"srb_fft"``, ``"srb_aom"``, ``"srb_dct"``, ``"nonlocal"`` or ``"double_attention"``.
        spatial_size: the input image size, an int repeated over the spatial dims or one per dim. The blocks
            are built for the feature sizes this input gives (the SRB's spectral grid; required for
            ``"srb_aom"``, which then takes only this input size). ``None``: SRB_F / SRB_DCT keep their
            default spectral grid, resampled to any input.
        block_args: further constructor arguments of the block (``reduction``, ``norm``, ...).

    Raises:
        ValueError: on a bad ``block``, ``srb_after`` or ``spatial_size``, ``"srb_aom"`` without
            ``spatial_size``, and the blocks' own argument errors.

    Example::

        net = SRBDenseNet121(spatial_dims=2, in_channels=1, out_channels=14)
        logits = net(torch.randn(2, 1, 224, 224))  # (2, 14)
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        srb_after: Sequence[str] = ("features.denseblock3", "features.denseblock4"),
        block: str = "srb_fft",
        spatial_size: Sequence[int] | int | None = None,
        **block_args: Any,
    ) -> None:
        probe_shape = _probe_shape(spatial_dims, in_channels, block, spatial_size)
        super().__init__(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels)
        _insert_after_stages(self, probe_shape, srb_after, block, spatial_size, block_args)
