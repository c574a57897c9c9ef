"""The paper's classic U-Net (and U-Net*) with Spectral Residual Blocks inserted around its up-sampling steps."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from monai.networks.blocks import UpSample
from monai.networks.nets import BasicUNet
from monai.networks.nets.basic_unet import UpCat
from monai.utils import ensure_tuple, ensure_tuple_rep, look_up_option
from torch import nn

from monai_srb.blocks.factory import check_block, make_block
from monai_srb.utils.sizes import (
    check_input_size,
    check_multiple_of,
    check_positive_int,
    check_spatial_dims,
    check_spatial_size,
)

__all__ = ["SRBUNet", "SRB_POSITIONS", "PAPER_UNET_FEATURES", "UNET_NORMS", "unet_norm"]

# The paper's naming: up4 is the up-sampling step closest to the encoder (BasicUNet's ``upcat_4``).
SRB_POSITIONS = tuple(f"{where}_up{n}" for n in (4, 3, 2, 1) for where in ("before", "after"))
# Widths of the paper's classic U-Net: 1,948,434 parameters as a 2D BasicUNet with 3 input and 2 output
# channels, 0.3% off the 1.943M the paper reports.
PAPER_UNET_FEATURES = (16, 32, 64, 128, 256, 16)
# The U-Net norms a bundle's ``norm`` override chooses from. "instance" is BasicUNet's own default; its
# per-image statistics at inference are a global path of their own, which batch norm (running statistics at
# inference) does not have. The paper does not name its U-Net's norm.
UNET_NORMS = {"instance": ("instance", {"affine": True}), "batch": ("batch", {"affine": True})}


class PadWhenNeededUpCat(UpCat):
    """
    MONAI's ``UpCat`` that pads the up-sampled map only where it is smaller than the encoder's (odd edge lengths).
    ``UpCat`` always calls ``pad(..., "replicate")``, with zero padding for even sizes, and under ``torch.compile``
    the fake kernel of ``replication_pad2d_backward`` asserts contiguous strides that inductor's channels-last
    gradient does not have: ``torch.compile(BasicUNet(2, 3, 2))`` fails its backward on torch 2.13 (CPU).
    Skipping the no-op pad computes the same values. :class:`SRBUNet` switches its ``upcat_*`` to this class in
    place rather than rebuilding them, so the seeded initialisation (and every published result) is unchanged.
    """

    def forward(self, x: torch.Tensor, x_e: torch.Tensor | None):
        """
        Args:
            x: features to be upsampled.
            x_e: optional features from the encoder, if None, this branch is not in use.
        """
        x_0 = self.upsample(x)
        # not MONAI's `torch.jit.isinstance(x_e, torch.Tensor)`: dynamo skips that function, a graph break at every
        # up-sampling; `is not None` refines Optional[Tensor] for TorchScript as well
        if x_e is not None:
            if self.is_pad:
                dimensions = len(x.shape) - 2
                sp = [0] * (dimensions * 2)
                for i in range(dimensions):
                    if x_e.shape[-i - 1] != x_0.shape[-i - 1]:
                        sp[i * 2 + 1] = 1
                if any([p != 0 for p in sp]):
                    x_0 = torch.nn.functional.pad(x_0, sp, "replicate")
            return self.convs(torch.cat([x_e, x_0], dim=1))
        return self.convs(x_0)


def unet_norm(norm: str) -> tuple[str, dict[str, Any]]:
    """
    The ``norm`` argument of :class:`~monai.networks.nets.BasicUNet` (and ``SRBUNet``'s ``unet_args``) for a
    norm name, e.g. ``unet_args={"norm": unet_norm("batch")}``.

    Args:
        norm: ``"instance"`` (BasicUNet's default, affine instance norm) or ``"batch"`` (affine batch norm).

    Raises:
        ValueError: when ``norm`` is not one of :data:`UNET_NORMS`.
    """
    name, args = look_up_option(norm, UNET_NORMS)
    return name, dict(args)


class SRBUNet(BasicUNet):
    """
    MONAI's :class:`~monai.networks.nets.BasicUNet` with residual blocks (SRB_F, SRB_A, SRB_DCT or the
    attention blocks the paper compares with) inserted at named positions of the decoder.

    Positions are ``"before_upN"`` and ``"after_upN"``, N = 1..4, up4 being the up-sampling step closest
    to the encoder (BasicUNet's ``upcat_4``): ``"before_upN"`` applies the block to the deeper map that
    enters ``upcat_N``, ``"after_upN"`` to the output of ``upcat_N``. ``"after_upN"`` and
    ``"before_up(N-1)"`` therefore see the same tensor; naming both stacks two blocks there, the
    ``after`` one first. Every position without a block holds an ``nn.Identity``, so ``forward`` has no
    branches and the network scripts with TorchScript (when its blocks do). As every block the factory
    makes is the identity at initialisation, a fresh SRBUNet computes what the plain U-Net computes.

    With ``unet_star=True`` it is the paper's U-Net*: the last max-pooling (in ``down_4``) is removed,
    so the deepest map is 1/8 of the input instead of 1/16 (with a 512 x 512 input the map before up4 is
    256 channels at 64 x 64, the paper's Table 3 setting), and ``upcat_4`` keeps its up-sampling layer
    type but at scale 1 (a 1x1 transposed convolution for ``"deconv"``) so that the output has the
    input's size.

    Channels and spatial size at each position, for an input of spatial size S and ``features`` f
    (U-Net*: ``before_up4`` is at S/8):

    ============================ ========== ========
    position                     channels   size
    ============================ ========== ========
    before_up4                   f[4]       S/16
    after_up4, before_up3        f[3]       S/8
    after_up3, before_up2        f[2]       S/4
    after_up2, before_up1        f[1]       S/2
    after_up1                    f[5]       S
    ============================ ========== ========

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        in_channels: number of input channels.
        out_channels: number of output channels.
        features: the six widths of :class:`~monai.networks.nets.BasicUNet` (five encoder levels, then the
            width after the last up-sampling). Default: the paper's classic U-Net.
        srb_positions: positions of the inserted blocks, a subset of :data:`SRB_POSITIONS` (a single
            name is accepted as a str).
        block: block name for :func:`monai_srb.blocks.factory.make_block`: ``"srb_fft"``, ``"srb_aom"``,
            ``"srb_dct"``, ``"nonlocal"`` or ``"double_attention"``.
        unet_star: build the paper's U-Net* (no last max-pooling, deepest map at 1/8).
        spatial_size: the input's spatial size (an int is repeated over the spatial dims). Required for
            ``"srb_aom"``, whose matrices are sized for the map at each position, and the network then
            takes only that input size; for ``"srb_fft"`` / ``"srb_dct"`` it gives the grid the spectral
            ReLU's ``W``, ``B`` are stored on at each position (default: the block's own default grid,
            resampled to any input). Every side must be a multiple of 16 (8 for U-Net*).
        unet_args: further :class:`~monai.networks.nets.BasicUNet` arguments (``act``, ``norm``, ``bias``,
            ``dropout``, ``upsample``); kept apart from ``block_args`` because the blocks have a ``norm``
            of their own.
        block_args: further constructor arguments of the inserted blocks (e.g. ``reduction``, ``groups``,
            ``norm``, ``transform_args`` for the SRBs).

    ``forward`` takes (batch, in_channels, spatial_1, spatial_2[, spatial_3]) and returns the logits in
    shape (batch, out_channels, spatial_1, spatial_2[, spatial_3]). Like BasicUNet it pads maps with odd
    edges, so sizes not divisible by 16 (8) run with the FFT / DCT blocks and the attention blocks, while
    the AOM blocks raise on any size but the one they were built for.

    The input must be at least ``min_input_size`` along every spatial dim, 16 (U-Net*: 8): the max-poolings
    floor the size by 16 (8), and a map of size 0 has no pixels. With an instance norm in the network
    (BasicUNet's default, or a block's ``norm``), the deepest map, the input floored by 16 (8) per axis, also
    needs ``min_deepest_positions`` = 2 positions: per-image statistics of one value raise ``Expected more
    than 1 spatial element`` in PyTorch. So 16 x 16 is refused with instance norm and 32 x 16 runs (as do
    32 x 32 x 16 volumes); with batch norm 16 x 16 runs in eval, and in training batch norm needs more than
    one value per channel (batch size times deepest positions above one). Smaller inputs raise a
    ``ValueError`` naming the limit.

    Raises:
        ValueError: on a ``spatial_dims`` other than 2 or 3 (an int), an ``in_channels`` or ``out_channels``
            below 1, an unknown or repeated position, a ``spatial_size`` with the wrong number of
            entries, not a multiple of 16 (8 for U-Net*) or too small for the deepest map's instance norm,
            ``block="srb_aom"`` without ``spatial_size``, and whatever
            :func:`~monai_srb.blocks.factory.make_block` and the blocks raise (unknown block name, bad block
            arguments); in ``forward``, on an input below ``min_input_size`` along a spatial dim or whose
            deepest map has fewer than ``min_deepest_positions`` positions.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        features: Sequence[int] = PAPER_UNET_FEATURES,
        srb_positions: Sequence[str] | str = ("before_up4",),
        block: str = "srb_fft",
        unet_star: bool = False,
        spatial_size: Sequence[int] | int | None = None,
        unet_args: Mapping[str, Any] | None = None,
        **block_args: Any,
    ) -> None:
        spatial_dims = check_spatial_dims(spatial_dims)
        in_channels = check_positive_int(in_channels, "in_channels")
        out_channels = check_positive_int(out_channels, "out_channels")
        unet_args = dict(unet_args or {})
        super().__init__(spatial_dims, in_channels, out_channels, features=features, **unet_args)
        positions = tuple(look_up_option(p, SRB_POSITIONS) for p in ensure_tuple(srb_positions))
        if len(set(positions)) != len(positions):
            raise ValueError(f"srb_positions must not repeat a position, got {positions}.")
        if positions:
            block = check_block(block, spatial_size)
        depth = 3 if unet_star else 4
        size: list[int] | None = None
        if spatial_size is not None:
            size = check_spatial_size(spatial_size, spatial_dims)
            check_multiple_of(
                spatial_size, 2**depth, "spatial_size", f"{'U-Net*' if unet_star else 'U-Net'}: {depth} max-poolings"
            )
        self.srb_positions = positions
        self.unet_star = unet_star

        for up in (self.upcat_1, self.upcat_2, self.upcat_3, self.upcat_4):
            up.__class__ = PadWhenNeededUpCat  # see its docstring: the same module, compilable
        fea = ensure_tuple_rep(features, 6)
        if unet_star:
            self.down_4.max_pooling = nn.Identity()
            # Same up-sampling layer type as BasicUNet's, at scale 1, so the deepest map (already at 1/8)
            # is concatenated with the 1/8 encoder map; BasicUNet's UpCat halves the channels here.
            self.upcat_4.upsample = UpSample(
                spatial_dims, fea[4], fea[4] // 2, scale_factor=1, mode=unet_args.get("upsample", "deconv")
            )

        # (channels, down-sampling factor) of the map each position sees.
        deepest = 2**depth
        geometry = {
            "before_up4": (fea[4], deepest),
            "after_up4": (fea[3], 8),
            "before_up3": (fea[3], 8),
            "after_up3": (fea[2], 4),
            "before_up2": (fea[2], 4),
            "after_up2": (fea[1], 2),
            "before_up1": (fea[1], 2),
            "after_up1": (fea[5], 1),
        }
        for position in SRB_POSITIONS:
            module: nn.Module = nn.Identity()
            if position in positions:
                channels, factor = geometry[position]
                map_size = None if size is None else [s // factor for s in size]
                module = make_block(block, spatial_dims, channels, spatial_size=map_size, **block_args)
            self.add_module(f"srb_{position}", module)

        # The deepest map is the input floored by 2**depth; instance norm's per-image statistics need two positions
        # in it (PyTorch raises on one), other norms one.
        per_image = any(isinstance(m, nn.modules.instancenorm._InstanceNorm) for m in self.modules())
        self.spatial_dims = spatial_dims
        self.min_input_size = deepest
        self.min_deepest_positions = 2 if per_image else 1
        if size is not None and math.prod(s // deepest for s in size) < self.min_deepest_positions:
            raise ValueError(
                f"spatial_size is the input's size, and with instance norm this U-Net's deepest map (the input "
                f"floored by {deepest} per axis) needs at least 2 positions, e.g. {2 * deepest} along one axis, "
                f"got {spatial_size!r}."
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: in shape (batch, in_channels, spatial_1, spatial_2[, spatial_3]), every spatial size at least
                ``min_input_size``.

        Returns:
            logits in shape (batch, out_channels, spatial_1, spatial_2[, spatial_3]).

        Raises:
            ValueError: on an input below ``min_input_size`` along a spatial dim, or whose deepest map has fewer
                than ``min_deepest_positions`` positions.
        """
        depth = 3 if self.unet_star else 4
        reason = f"{depth} max-poolings floor it by {self.min_input_size}"
        check_input_size(x, self.spatial_dims, self.min_input_size, "SRBUNet", reason)
        if self.min_deepest_positions > 1 and x.ndim == self.spatial_dims + 2:
            positions = 1
            for size in x.shape[2:]:
                positions *= size // self.min_input_size
            if positions < self.min_deepest_positions:
                raise ValueError(
                    f"SRBUNet with instance norm needs a deepest map (the input floored by {self.min_input_size} "
                    f"per axis) of at least {self.min_deepest_positions} positions, e.g. {2 * self.min_input_size} "
                    f"along one axis and {self.min_input_size} along the others, got shape {list(x.shape)}."
                )
        x0 = self.conv_0(x)
        x1 = self.down_1(x0)
        x2 = self.down_2(x1)
        x3 = self.down_3(x2)
        x4 = self.down_4(x3)

        u4 = self.srb_after_up4(self.upcat_4(self.srb_before_up4(x4), x3))
        u3 = self.srb_after_up3(self.upcat_3(self.srb_before_up3(u4), x2))
        u2 = self.srb_after_up2(self.upcat_2(self.srb_before_up2(u3), x1))
        u1 = self.srb_after_up1(self.upcat_1(self.srb_before_up1(u2), x0))
        return self.final_conv(u1)
