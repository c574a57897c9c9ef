"""The paper's Fig. 3 network: a dilated ResNet-50, a simple parallel module (SPM) and one SRB before its last conv."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Conv, Pool
from monai.networks.nets import resnet50
from monai.networks.nets.resnet import ResNet
from torch import nn
from torch.nn import functional as F

from monai_srb.blocks.factory import check_block, make_block
from monai_srb.utils.sizes import check_input_size, check_positive_int, check_spatial_dims, check_spatial_size

__all__ = ["SRBSPMNet", "SimpleParallelModule", "dilate_resnet_", "OUTPUT_STRIDE"]

# conv1 (stride 2), max-pooling and layer2 are the only down-sampling steps left once layer3 and
# layer4 are dilated.
OUTPUT_STRIDE = 8


def dilate_resnet_(resnet: ResNet, dilations: Sequence[int] = (2, 4)) -> ResNet:
    """
    Turn the strides of ``layer3`` and ``layer4`` of a MONAI bottleneck ResNet into dilations, in place,
    so that the two last stages keep the resolution of ``layer2`` (output stride 8 with a stride-2
    ``conv1``): the strided 3x3 conv and the strided 1x1 shortcut of each stage's first block get
    stride 1, and every 3x3 conv after them is dilated (padding = dilation keeps the map size).

    As in torchvision's ``replace_stride_with_dilation``, the first block of a stage keeps the previous
    stage's dilation: its 3x3 conv used to sample the finer grid before striding, so a pretrained
    kernel keeps seeing the same neighbourhood.

    Args:
        resnet: a :class:`~monai.networks.nets.resnet.ResNet` with bottleneck blocks and shortcut ``"B"``.
        dilations: dilations of ``layer3`` and ``layer4``.

    Returns:
        ``resnet``, modified.

    Raises:
        ValueError: when ``dilations`` does not have two entries.
    """
    if len(dilations) != 2:
        raise ValueError(f"dilations must give the dilation of layer3 and layer4, got {tuple(dilations)}.")
    previous = 1
    for layer, dilation in zip((resnet.layer3, resnet.layer4), dilations):
        for i, bottleneck in enumerate(layer):
            d = previous if i == 0 else int(dilation)
            conv = bottleneck.conv2
            # nn.ConvNd reads stride, dilation and padding at call time, so editing them re-wires the conv.
            conv.stride = (1,) * len(conv.stride)
            conv.dilation = (d,) * len(conv.dilation)
            conv.padding = (d,) * len(conv.padding)
            bottleneck.stride = 1
            if isinstance(bottleneck.downsample, nn.Sequential):
                shortcut = bottleneck.downsample[0]
                shortcut.stride = (1,) * len(shortcut.stride)
        previous = int(dilation)
    return resnet


class SimpleParallelModule(nn.Module):
    """
    The paper's simple parallel module (SPM), inspired by DeepLabV3's ASPP: parallel branches on the
    backbone's map, a 1x1 conv, one 3x3 conv per dilation and image pooling (global average, 1x1 conv,
    broadcast back to the map's size), concatenated along channels.

    The image-pooling branch has no norm layer: batch norm over a 1 x 1 map has a single value per
    channel for a batch of one, which batch norm rejects in training.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        in_channels: channels of the backbone's map.
        channels: output channels of each branch.
        dilations: dilations of the 3x3 branches (DeepLabV3's 12, 24, 36 at output stride 8).
        norm: norm of the conv branches, a MONAI norm name or (name, args).
        act: activation of every branch, a MONAI act name or (name, args).

    ``forward`` takes (batch, in_channels, spatial_1, spatial_2[, spatial_3]) and returns
    (batch, ``channels * (len(dilations) + 2)``, spatial_1, spatial_2[, spatial_3]).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        channels: int,
        dilations: Sequence[int] = (12, 24, 36),
        norm: str | tuple = "batch",
        act: str | tuple = "relu",
    ) -> None:
        super().__init__()
        branches = [Convolution(spatial_dims, in_channels, channels, kernel_size=1, norm=norm, act=act, bias=False)]
        for d in dilations:
            branches.append(
                Convolution(
                    spatial_dims, in_channels, channels, kernel_size=3, dilation=int(d), norm=norm, act=act, bias=False
                )
            )
        self.branches = nn.ModuleList(branches)
        self.image_pooling = nn.Sequential(
            Pool[Pool.ADAPTIVEAVG, spatial_dims](1),
            Convolution(spatial_dims, in_channels, channels, kernel_size=1, norm=None, act=act, bias=True),
        )
        self.out_channels = channels * (len(dilations) + 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        pooled = self.image_pooling(x)
        outs.append(pooled.expand([-1, -1] + list(x.shape[2:])))
        return torch.cat(outs, dim=1)


class SRBSPMNet(nn.Module):
    """
    The paper's Fig. 3 segmentation network: a ResNet-50 backbone (MONAI's ``resnet50``, randomly
    initialised, never downloaded) whose last two stages are dilated (layer3 dilation 2, layer4
    dilation 4, output stride 8), a :class:`SimpleParallelModule` on its 2048-channel map, one residual
    block (SRB_F by default) on the SPM's concatenated map, the SPM's final 3x3 conv, a 1x1 classifier
    and up-sampling to the input's size.

    ``conv1`` has stride 2 as in the ImageNet ResNet-50 (MONAI's default is 1), so the map the SPM and
    the SRB see is ``ceil(S / 8)`` for an input of spatial size S. With the defaults, the 2D network with
    3 input and 2 output channels has 29,629,474 parameters without the SRB (the paper: 29.59M);
    the SRB_F adds 10,945 with 512 x 512 inputs (the paper: 2.11M; its 1x1 convs are grouped,
    ``groups=1`` in ``block_args`` makes them dense: 928,705).

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        in_channels: number of input channels.
        out_channels: number of output channels (classes).
        spatial_size: the input's spatial size (an int is repeated over the spatial dims). Required for
            ``"srb_aom"``, whose matrices are sized for the ``ceil(S / 8)`` map, and the network then takes
            only that input size; for ``"srb_fft"`` / ``"srb_dct"`` it gives the spectral ReLU's grid.
        srb: insert the block; ``False`` gives the plain SPM network (an ``nn.Identity`` in its place).
        block: block name for :func:`monai_srb.blocks.factory.make_block`.
        spm_channels: channels of each SPM branch and of the final 3x3 conv.
        spm_dilations: dilations of the SPM's 3x3 branches.
        block_args: further constructor arguments of the block (e.g. ``reduction``, ``groups``, ``norm``).

    ``forward`` takes (batch, in_channels, spatial_1, spatial_2[, spatial_3]) and returns the logits in
    shape (batch, out_channels, spatial_1, spatial_2[, spatial_3]), bilinearly (trilinearly) up-sampled
    from the output-stride-8 map.

    Any input of at least 1 pixel (voxel) along every spatial dim runs (``min_input_size`` is 1): the three
    stride-2 steps (conv1, max-pooling, layer2) map a size n to ``ceil(n / 2)``, never to 0, and the dilated
    convs are padded to keep their map's size. An empty spatial dim raises a ``ValueError`` naming the limit.
    In training, batch norm also needs more than one value per channel: batch size times positions of the
    ``ceil(S / 8)`` map above one.

    Raises:
        ValueError: on a ``spatial_dims`` other than 2 or 3 (an int), an ``in_channels`` or ``out_channels``
            below 1, a ``spatial_size`` with the wrong number of entries or an entry that is not an int >= 1,
            an unknown ``block`` or ``block="srb_aom"`` without ``spatial_size`` (both from
            :func:`~monai_srb.blocks.factory.check_block`), and whatever the block raises; in ``forward``, on
            an empty spatial dim.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        spatial_size: Sequence[int] | int | None = None,
        srb: bool = True,
        block: str = "srb_fft",
        spm_channels: int = 96,
        spm_dilations: Sequence[int] = (12, 24, 36),
        **block_args: Any,
    ) -> None:
        super().__init__()
        spatial_dims = check_spatial_dims(spatial_dims)
        in_channels = check_positive_int(in_channels, "in_channels")
        out_channels = check_positive_int(out_channels, "out_channels")
        if srb:
            block = check_block(block, spatial_size)
        map_size: list[int] | None = None
        if spatial_size is not None:
            size = check_spatial_size(spatial_size, spatial_dims)
            # Each of the three stride-2 steps (conv1 k7 p3, max-pool k3 p1, layer2's k3 p1) maps n to ceil(n / 2).
            map_size = [-(-s // OUTPUT_STRIDE) for s in size]

        self.backbone = dilate_resnet_(
            resnet50(
                pretrained=False,
                spatial_dims=spatial_dims,
                n_input_channels=in_channels,
                conv1_t_stride=2,
                feed_forward=False,
            )
        )
        backbone_channels = self.backbone.layer4[-1].conv3.out_channels
        self.spm = SimpleParallelModule(spatial_dims, backbone_channels, spm_channels, spm_dilations)
        self.srb: nn.Module = (
            make_block(block, spatial_dims, self.spm.out_channels, spatial_size=map_size, **block_args)
            if srb
            else nn.Identity()
        )
        self.final_conv = Convolution(
            spatial_dims, self.spm.out_channels, spm_channels, kernel_size=3, norm="batch", act="relu", bias=False
        )
        self.classifier = Conv[Conv.CONV, spatial_dims](spm_channels, out_channels, kernel_size=1)
        self.interp_mode = "bilinear" if spatial_dims == 2 else "trilinear"
        self.spatial_dims = spatial_dims
        self.min_input_size = 1  # every stride-2 step maps n to ceil(n / 2), see the class docstring

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The dilated backbone's map, (batch, 2048, ceil(spatial_1 / 8), ...)."""
        b = self.backbone
        x = b.maxpool(b.act(b.bn1(b.conv1(x))))
        return b.layer4(b.layer3(b.layer2(b.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: in shape (batch, in_channels, spatial_1, spatial_2[, spatial_3]), every spatial size at least 1.

        Returns:
            logits in shape (batch, out_channels, spatial_1, spatial_2[, spatial_3]).

        Raises:
            ValueError: on an empty spatial dim.
        """
        check_input_size(
            x, self.spatial_dims, self.min_input_size, "SRBSPMNet", "its stride-2 steps map n to ceil(n / 2)"
        )
        y = self.final_conv(self.srb(self.spm(self.features(x))))
        y = self.classifier(y)
        return F.interpolate(y, size=x.shape[2:], mode=self.interp_mode, align_corners=False)
