"""The double attention block of A²-Net (Chen et al. 2018), one of the blocks the paper compares SRB with.

The checks every attention block passes, and the helpers, come from tests/blocks/test_nonlocal_block.py.
"""

from __future__ import annotations

import pytest
import torch
from test_nonlocal_block import (
    BAD_INPUT_SHAPES,
    COMMON_BAD_ARGS,
    GROUP,
    _conv1x1,
    _randomised,
    check_bad_input,
    check_global_receptive_field,
    check_identity_at_init,
    check_shape,
    check_torchscript,
)

from monai_srb.blocks.double_attention import DoubleAttentionBlock

# (constructor kwargs, input shape); the output has the input's shape. Odd sizes on purpose.
CASES = [
    ({"spatial_dims": 2, "in_channels": 8}, (2, 8, 9, 7)),
    ({"spatial_dims": 2, "in_channels": 8, "key_channels": 3, "value_channels": 5}, (2, 8, 9, 7)),
    ({"spatial_dims": 2, "in_channels": 8, "norm": None}, (2, 8, 9, 7)),
    ({"spatial_dims": 2, "in_channels": 1}, (2, 1, 5, 3)),
    ({"spatial_dims": 3, "in_channels": 4}, (1, 4, 5, 6, 7)),
    ({"spatial_dims": 3, "in_channels": 4, "key_channels": 2, "value_channels": 3, "norm": GROUP}, (1, 4, 5, 6, 7)),
    ({"spatial_dims": 3, "in_channels": 6, "norm": "instance"}, (2, 6, 3, 5, 4)),
]
BAD_ARGS = COMMON_BAD_ARGS + [
    ({"spatial_dims": 2, "in_channels": 8, "key_channels": 0}, "key_channels"),
    ({"spatial_dims": 2, "in_channels": 8, "value_channels": -1}, "value_channels"),
    ({"spatial_dims": 2, "in_channels": 8, "key_channels": "2"}, r"key_channels .*'2' \(str\)"),
]


def _double_attention_reference(block: DoubleAttentionBlock, x: torch.Tensor) -> torch.Tensor:
    """Chen et al. Eqn. 3-5: G = A softmax_N(B)^T gathers, Z = G softmax_n(V) distributes, y = x + norm(W Z)."""
    flat = x.flatten(2)
    features = _conv1x1(block.conv_a, flat)  # (batch, m, N)
    maps = torch.softmax(_conv1x1(block.conv_b, flat), dim=2)  # (batch, n, N), over positions
    vectors = torch.softmax(_conv1x1(block.conv_v, flat), dim=1)  # (batch, n, N), over descriptors
    descriptors = torch.einsum("bmp,bnp->bmn", features, maps)
    z = torch.einsum("bmn,bnp->bmp", descriptors, vectors)
    return x + block.norm(_conv1x1(block.conv_out, z).reshape(x.shape))


# (constructor kwargs, input shape) for the comparison with the einsum reference.
REFERENCE_CASES = [
    ({"spatial_dims": 2, "in_channels": 8}, (2, 8, 9, 7)),
    ({"spatial_dims": 2, "in_channels": 8, "key_channels": 3, "value_channels": 5}, (2, 8, 6, 5)),
    ({"spatial_dims": 2, "in_channels": 4, "norm": None}, (1, 4, 4, 12)),
    ({"spatial_dims": 3, "in_channels": 6, "key_channels": 4, "norm": GROUP}, (2, 6, 5, 6, 3)),
    ({"spatial_dims": 3, "in_channels": 4, "norm": None}, (1, 4, 5, 4, 7)),
]


@pytest.mark.parametrize("kwargs,shape", REFERENCE_CASES)
def test_matches_einsum_reference(kwargs, shape):
    torch.manual_seed(0)
    module = _randomised(DoubleAttentionBlock(**kwargs), seed=1).double().eval()
    x = torch.randn(shape, dtype=torch.float64)
    with torch.no_grad():
        expected = _double_attention_reference(module, x)
        out = module(x)
    assert (expected - x).abs().mean() > 0.1  # the attention branch is far from the identity
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("kwargs,shape", CASES)
def test_shape(kwargs, shape):
    check_shape(DoubleAttentionBlock, kwargs, shape)


@pytest.mark.parametrize("kwargs,shape", CASES)
@pytest.mark.parametrize("train", [False, True])
def test_identity_at_init(kwargs, shape, train):
    check_identity_at_init(DoubleAttentionBlock, kwargs, shape, train)


@pytest.mark.parametrize("kwargs,shape", CASES)
def test_global_receptive_field(kwargs, shape):
    check_global_receptive_field(DoubleAttentionBlock, kwargs, shape)


@pytest.mark.parametrize("kwargs,shape", CASES)
def test_torchscript(kwargs, shape):
    check_torchscript(DoubleAttentionBlock, kwargs, shape)


@pytest.mark.parametrize("in_channels,expected", [(256, (64, 64)), (3, (1, 1))])
def test_default_widths(in_channels, expected):
    block = DoubleAttentionBlock(2, in_channels)
    assert (block.key_channels, block.value_channels) == expected


@pytest.mark.parametrize("kwargs,match", BAD_ARGS)
def test_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DoubleAttentionBlock(**kwargs)


@pytest.mark.parametrize("shape", BAD_INPUT_SHAPES)
def test_bad_input(shape):
    check_bad_input(DoubleAttentionBlock, shape)
