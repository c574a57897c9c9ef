from __future__ import annotations

import pytest
import torch

from monai_srb.blocks import (
    DoubleAttentionBlock,
    NonLocalBlock,
    SpectralResidualBlock,
    block_names,
    check_block,
    make_block,
)
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
