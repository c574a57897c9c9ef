from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from monai.networks.layers.factories import Conv
from torch import nn

from monai_srb.blocks import (
    BLOCK_TYPES,
    DoubleAttentionBlock,
    NonLocalBlock,
    SpectralResidualBlock,
    block_name,
    block_names,
    check_block,
    is_block,
    make_block,
    needs_spatial_size,
    register_block,
    unregister_block,
)
from monai_srb.nets import SRB_POSITIONS, insert_blocks
from monai_srb.spectral import AdaptiveOrthogonalTransform, CosineTransform, FourierTransform


def test_block_names_follow_the_registry():
    assert block_names() == ["srb_fft", "srb_aom", "srb_dct", "srb_identity", "nonlocal", "double_attention"]


# (name, spatial_size, kwargs, expected block class, expected transform class or None)
CASES = [
    ("srb_fft", None, {}, SpectralResidualBlock, FourierTransform),
    ("srb_fft", (8, 8), {"transform_args": {"impl": "matmul"}, "groups": 2}, SpectralResidualBlock, FourierTransform),
    ("srb_aom", (8, 6), {"transform_args": {"init": "dct"}}, SpectralResidualBlock, AdaptiveOrthogonalTransform),
    ("srb_dct", None, {}, SpectralResidualBlock, CosineTransform),
    ("nonlocal", (8, 8), {}, NonLocalBlock, None),
    ("double_attention", None, {}, DoubleAttentionBlock, None),
]


@pytest.mark.parametrize("name,size,kwargs,cls,transform", CASES)
def test_make_block(name, size, kwargs, cls, transform):
    torch.manual_seed(0)
    assert check_block(name, size) == name
    block = make_block(name, 2, 8, spatial_size=size, **kwargs)
    assert type(block) is cls
    if transform is not None:
        assert type(block.f) is transform
    x = torch.randn(2, 8, *(size or (8, 8)))
    assert torch.equal(block.eval()(x), x)  # every block is the identity at initialisation


def test_transform_args_reach_the_transform():
    assert make_block("srb_fft", 2, 4, transform_args={"impl": "matmul"}).f.impl == "matmul"
    aom = make_block("srb_aom", 2, 4, spatial_size=(4, 4), transform_args={"mode": "parametrization"})
    assert aom.f.mode == "parametrization"


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: check_block("srb_fourier", None), r"(?s)'srb_fourier'.*Available options"),
        (lambda: check_block("srb_aom", None), r"block='srb_aom' needs spatial_size"),
        (lambda: make_block("fft", 2, 4), r"(?s)'fft'.*Available options"),
        (lambda: make_block("srb_aom", 2, 4), r"block='srb_aom' needs spatial_size"),
    ],
)
def test_bad_names(call, message):
    with pytest.raises(ValueError, match=message):
        call()


class ToyBlock(nn.Module):
    """A user's own block: ``x + conv1x1(x)``, the conv zero at initialisation so the block starts as the identity."""

    def __init__(self, spatial_dims: int, in_channels: int, scale: float = 1.0) -> None:
        super().__init__()
        self.conv = Conv[Conv.CONV, spatial_dims](in_channels, in_channels, kernel_size=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * self.conv(x)


class SizedToyBlock(ToyBlock):
    """A registered block that needs the spatial size of its input (no default)."""

    def __init__(self, spatial_dims: int, in_channels: int, spatial_size: Sequence[int]) -> None:
        super().__init__(spatial_dims, in_channels)
        self.spatial_size = list(spatial_size)


@pytest.fixture
def toy_blocks():
    """``"toy"`` and ``"sized_toy"`` registered for one test, and unregistered again whatever the test does."""
    register_block("toy", ToyBlock)
    register_block("sized_toy", SizedToyBlock)
    yield
    for name in ("toy", "sized_toy"):
        if name in BLOCK_TYPES:
            unregister_block(name)


def test_registry_lists_the_blocks_and_names_them_back():
    assert list(BLOCK_TYPES) == block_names() and len(BLOCK_TYPES) == len(block_names())
    for name in block_names():
        block = make_block(name, 2, 8, spatial_size=(8, 8))
        assert is_block(block) and block_name(block) == name
    assert not is_block(nn.Conv2d(1, 1, 1)) and block_name(nn.Conv2d(1, 1, 1)) == "Conv2d"
    assert [needs_spatial_size(n) for n in block_names()] == [False, True, False, False, False, False]


def test_a_registered_block_is_built_named_and_removed(toy_blocks):
    assert block_names()[-2:] == ["toy", "sized_toy"]
    block = make_block("toy", 2, 4, scale=2.0)
    assert type(block) is ToyBlock and block.scale == 2.0 and block_name(block) == "toy" and is_block(block)
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(block(x), x)
    # a spatial_size parameter gets the map's size, and without a default the block needs one
    assert make_block("sized_toy", 2, 4, spatial_size=[8, 6]).spatial_size == [8, 6]
    assert block_name(make_block("sized_toy", 2, 4, spatial_size=[8, 6])) == "sized_toy"  # its own, not "toy"
    assert needs_spatial_size("sized_toy") and not needs_spatial_size("toy")
    with pytest.raises(ValueError, match=r"block='sized_toy' needs spatial_size \(SizedToyBlock takes it"):
        check_block("sized_toy", None)
    assert unregister_block("toy") is ToyBlock and "toy" not in BLOCK_TYPES
    with pytest.raises(ValueError, match=r"(?s)'toy'.*Available options"):
        make_block("toy", 2, 4)


@pytest.mark.parametrize(
    "name, constructor, message",
    [
        ("nonlocal", ToyBlock, r"block name 'nonlocal' is taken by NonLocalBlock, got <class .*ToyBlock'>"),
        ("srb_toy", ToyBlock, r"'srb_'\.\.\. are the SRBs .*register_transform\('toy'\) instead, got 'srb_toy'"),
        ("", ToyBlock, r"non-empty block name, got ''"),
        ("toy", lambda spatial_dims, in_channels: ToyBlock(spatial_dims, in_channels), r"nn.Module subclass .*got <"),
        ("toy", nn.ReLU, r"register_block\('toy'\) needs an nn.Module subclass .*got ReLU\(inplace: bool = False\)"),
        ("toy", ToyBlock(2, 1), r"needs an nn.Module subclass taking \(spatial_dims, in_channels, ...\), got ToyBlock"),
    ],
)
def test_register_block_refuses(name, constructor, message):
    with pytest.raises(ValueError, match=message):
        register_block(name, constructor)
    assert block_names() == ["srb_fft", "srb_aom", "srb_dct", "srb_identity", "nonlocal", "double_attention"]


@pytest.mark.parametrize("name", ["srb_fft", "bogus"])
def test_unregister_block_refuses(name):
    with pytest.raises(ValueError, match=rf"unregister_block takes one of \['nonlocal', 'double_attention'\], got "
                                         rf"'{name}'"):
        unregister_block(name)


def test_attention_blocks_is_a_deprecated_view():
    from monai_srb.blocks import factory

    with pytest.warns(DeprecationWarning, match="ATTENTION_BLOCKS is deprecated"):
        assert factory.ATTENTION_BLOCKS == {"nonlocal": NonLocalBlock, "double_attention": DoubleAttentionBlock}


SKIN_TRAIN = Path(__file__).resolve().parents[2] / "bundles" / "srb_skin_lesion_segmentation" / "configs" / "train.json"


@pytest.mark.parametrize("positions", [["before_up1", "before_up4"], ["after_up2"]])
def test_a_registered_block_reaches_a_bundle_by_name(toy_blocks, positions):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(SKIN_TRAIN))
    # image_channels given, so that no data set is read to count them
    parser.update({"block": "toy", "srb_positions": positions, "image_size": 32, "image_channels": 3})
    network = parser.get_parsed_content("network_def")
    for position in SRB_POSITIONS:
        assert type(getattr(network, f"srb_{position}")) is (ToyBlock if position in positions else nn.Identity)
    assert network.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 2, 32, 32)
    inserted = insert_blocks(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()), "1", "toy", example_input=(1, 3, 8, 8))
    assert type(inserted[1].block) is ToyBlock and block_name(inserted[1].block) == "toy"
