"""Build any of the paper's blocks by name, so networks and bundle configs can swap them freely."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monai.utils import look_up_option
from torch import nn

from monai_srb.blocks.double_attention import DoubleAttentionBlock
from monai_srb.blocks.nonlocal_block import NonLocalBlock
from monai_srb.blocks.spectral_residual import SpectralResidualBlock
from monai_srb.spectral.registry import TRANSFORMS

__all__ = ["ATTENTION_BLOCKS", "block_names", "check_block", "make_block"]

ATTENTION_BLOCKS: dict[str, type[nn.Module]] = {"nonlocal": NonLocalBlock, "double_attention": DoubleAttentionBlock}


def _srb_transforms() -> dict[str, str]:
    """``"srb_<name>"`` -> ``<name>`` per registered transform, read at call time (registrations may come later)."""
    return {f"srb_{name}": name for name in TRANSFORMS}


def block_names() -> list[str]:
    """The names :func:`make_block` takes: ``"srb_<transform>"`` per registered transform, then the attention blocks."""
    return list(_srb_transforms()) + list(ATTENTION_BLOCKS)


def check_block(block: str, spatial_size: Sequence[int] | int | None) -> str:
    """
    ``block`` when :func:`make_block` can build it with ``spatial_size``.

    Args:
        block: a block name, see :func:`block_names`.
        spatial_size: the spatial size the caller will give the block, ``None`` when none.

    Raises:
        ValueError: on an unknown ``block`` (MONAI's ``look_up_option`` message, naming it and the known
            names), and when the block's transform is built for one input size (``"srb_aom"``) and
            ``spatial_size`` is ``None``.
    """
    block = look_up_option(block, block_names())
    transform = _srb_transforms().get(block)
    if transform is not None and spatial_size is None and TRANSFORMS[transform].needs_spatial_size:
        raise ValueError(
            f"block={block!r} needs spatial_size (the input's spatial size sizes {TRANSFORMS[transform].__name__}), "
            "got None."
        )
    return block


def make_block(
    name: str, spatial_dims: int, in_channels: int, spatial_size: Sequence[int] | None = None, **kwargs: Any
) -> nn.Module:
    """
    Create a residual block that is the identity at initialisation.

    Args:
        name: ``"srb_fft"``, ``"srb_aom"``, ``"srb_dct"`` (:class:`SpectralResidualBlock` with that
            transform, and ``"srb_<name>"`` for any transform registered later), ``"nonlocal"``
            (:class:`NonLocalBlock`) or ``"double_attention"`` (:class:`DoubleAttentionBlock`).
        spatial_dims: number of spatial dimensions, 2 or 3.
        in_channels: channels of the feature map the block sees.
        spatial_size: spatial size of that feature map (needed by ``"srb_aom"``; the spectral ReLU grid
            of the other SRBs; ignored by the attention blocks).
        kwargs: further constructor arguments of the block; for an SRB, ``transform_args`` holds the
            transform's own arguments (``{"init": "dct"}`` for ``"srb_aom"``, ``{"impl": "matmul"}`` for
            ``"srb_fft"``).

    Raises:
        ValueError: on an unknown ``name``, ``"srb_aom"`` without ``spatial_size``, and the block's own
            argument errors.
    """
    name = check_block(name, spatial_size)
    transforms = _srb_transforms()
    if name in transforms:
        transform = (transforms[name], kwargs.pop("transform_args", {}))
        return SpectralResidualBlock(spatial_dims, in_channels, transform, spatial_size=spatial_size, **kwargs)
    return ATTENTION_BLOCKS[name](spatial_dims, in_channels, **kwargs)
