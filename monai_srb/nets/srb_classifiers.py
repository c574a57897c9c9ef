"""The paper's classifiers: MONAI's ResNet-50 and DenseNet-121 with Spectral Residual Blocks after their last stages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.networks.nets import DenseNet121, ResNet
from monai.networks.nets.resnet import ResNetBottleneck, get_inplanes
from torch import nn

from monai_srb.blocks.factory import check_block
from monai_srb.nets.insertion import insert_blocks
from monai_srb.utils.sizes import (
    check_input_size,
    check_min_size,
    check_positive_int,
    check_spatial_dims,
    check_spatial_size,
)

__all__ = ["SRBDenseNet121", "SRBResNet50"]

# Probe input size per axis when no spatial_size is given: the probe then only needs channel counts, and
# DenseNet-121 downsamples by 32.
_PROBE_SIZE = 32


def _probe_shape(
    spatial_dims: int, in_channels: int, out_channels: int, block: str, spatial_size: Sequence[int] | int | None
) -> list[int]:
    """The probe input shape for ``spatial_size``; the arguments are checked before the backbone is built."""
    spatial_dims = check_spatial_dims(spatial_dims)
    in_channels = check_positive_int(in_channels, "in_channels")
    check_positive_int(out_channels, "out_channels")
    check_block(block, spatial_size)
    if spatial_size is None:
        return [1, in_channels] + [_PROBE_SIZE] * spatial_dims
    return [1, in_channels, *check_spatial_size(spatial_size, spatial_dims)]


def _min_input_size(features: nn.Module) -> int:
    """
    The smallest input edge for which every strided convolution and pooling in ``features`` leaves at least
    one position: 29 for MONAI's DenseNet-121 (28 ends at 0 x 0 in ``transition3``'s pooling).

    Walks the layers in registration order, which is the forward order of a ``Sequential`` backbone such as
    DenseNet's ``features``; size-preserving layers (3x3 convs with padding 1) drop out of the count.

    Args:
        features: the backbone, a chain of convolutions and poolings (with square kernels) between other layers.
    """
    layers = [
        m
        for m in features.modules()
        if isinstance(m, (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd))
    ]

    def first(value: Any) -> int:
        return int(value[0] if isinstance(value, (tuple, list)) else value)

    def output_size(n: int) -> int:
        for m in layers:
            kernel, stride, padding = first(m.kernel_size), first(m.stride), first(m.padding)
            span = first(getattr(m, "dilation", 1)) * (kernel - 1) + 1
            n = n + 2 * padding - span
            n = (-(-n // stride) if getattr(m, "ceil_mode", False) else n // stride) + 1
            if n < 1:
                return 0
        return n

    n = 1
    while output_size(n) < 1:
        n += 1
    return n


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

    Any input of at least 1 pixel (voxel) along every spatial dim runs (``min_input_size`` is 1): each of
    ResNet-50's stride-2 layers (3x3 and 1x1 convs, 3x3 max-pooling, all padded) maps a size n to
    ``ceil(n / 2)``, never to 0. An empty spatial dim raises a ``ValueError`` naming the limit. In training,
    batch norm also needs more than one value per channel: batch size times positions of the 1/16 map above one.

    Raises:
        ValueError: on a ``spatial_dims`` other than 2 or 3 (an int), an ``in_channels`` or ``out_channels``
            below 1, a bad ``block``, ``srb_after`` or ``spatial_size``, ``"srb_aom"`` without
            ``spatial_size``, and the blocks' own argument errors; in ``forward``, on an empty spatial dim.

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
        probe_shape = _probe_shape(spatial_dims, in_channels, out_channels, block, spatial_size)
        # ResNet-50 exactly as monai.networks.nets.resnet50 builds it, so weights and seeds carry over.
        super().__init__(
            block=ResNetBottleneck,
            layers=[3, 4, 6, 3],
            block_inplanes=get_inplanes(),
            spatial_dims=spatial_dims,
            n_input_channels=in_channels,
            num_classes=out_channels,
        )
        self.spatial_dims = spatial_dims
        self.min_input_size = 1  # every stride-2 layer maps n to ceil(n / 2), see the class docstring
        _insert_after_stages(self, probe_shape, srb_after, block, spatial_size, block_args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: in shape (batch, in_channels, spatial_1, spatial_2[, spatial_3]), every spatial size at least 1.

        Returns:
            logits in shape (batch, out_channels).

        Raises:
            ValueError: on an empty spatial dim.
        """
        # ResNet.forward line for line (TorchScript has no super() calls), after the size check.
        check_input_size(
            x, self.spatial_dims, self.min_input_size, "SRBResNet50", "its stride-2 layers map n to ceil(n / 2)"
        )
        x = self.act(self.bn1(self.conv1(x)))
        if not self.no_max_pool:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x)
        x = x.view(x.size(0), -1)
        if self.fc is not None:
            x = self.fc(x)
        return x


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

    The input must be at least 29 pixels (voxels) along every spatial dim (``min_input_size``): DenseNet-121
    halves it five times, and 28 (MedMNIST's native size) ends at 0 x 0 in ``transition3``'s pooling.
    Smaller inputs raise a ``ValueError`` naming the limit.

    Raises:
        ValueError: on a ``spatial_dims`` other than 2 or 3 (an int), an ``in_channels`` or ``out_channels``
            below 1, a bad ``block`` or ``srb_after``, a ``spatial_size`` that is not positive ints or is
            below 29, ``"srb_aom"`` without ``spatial_size``, and the blocks' own argument errors; in
            ``forward``, on an input below 29 along a spatial dim.

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
        probe_shape = _probe_shape(spatial_dims, in_channels, out_channels, block, spatial_size)
        super().__init__(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels)
        self.spatial_dims = spatial_dims
        self.min_input_size = _min_input_size(self.features)
        if spatial_size is not None:
            check_min_size(
                spatial_size, self.min_input_size, "spatial_size (the input image size)",
                "DenseNet-121 halves it five times, which leaves no position below that",
            )
        _insert_after_stages(self, probe_shape, srb_after, block, spatial_size, block_args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: in shape (batch, in_channels, spatial_1, spatial_2[, spatial_3]), every spatial size at least
                ``min_input_size`` (29).

        Returns:
            logits in shape (batch, out_channels).
        """
        # DenseNet121.forward line for line (TorchScript has no super() calls), after a size check that names
        # the limit instead of the pooling error deep inside transition3.
        check_input_size(
            x, self.spatial_dims, self.min_input_size, "SRBDenseNet121",
            "DenseNet-121 halves it five times; resize the images, e.g. MedMNIST's 28 px",
        )
        x = self.features(x)
        x = self.class_layers(x)
        return x
