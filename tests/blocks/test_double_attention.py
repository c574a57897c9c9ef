from __future__ import annotations

import pytest
import torch
from torch import nn

from monai_srb.blocks.double_attention import DoubleAttentionBlock

# (constructor kwargs, input shape, expected output shape); odd sizes on purpose.
CASES = [
    ({"spatial_dims": 2, "in_channels": 8}, (2, 8, 9, 7), (2, 8, 9, 7)),
    ({"spatial_dims": 2, "in_channels": 8, "key_channels": 3, "value_channels": 5}, (2, 8, 9, 7), (2, 8, 9, 7)),
    ({"spatial_dims": 2, "in_channels": 8, "norm": None}, (2, 8, 9, 7), (2, 8, 9, 7)),
    ({"spatial_dims": 2, "in_channels": 1}, (2, 1, 5, 3), (2, 1, 5, 3)),
    ({"spatial_dims": 3, "in_channels": 4}, (1, 4, 5, 6, 7), (1, 4, 5, 6, 7)),
    (
        {
            "spatial_dims": 3,
            "in_channels": 4,
            "key_channels": 2,
            "value_channels": 3,
            "norm": ("group", {"num_groups": 2}),
        },
        (1, 4, 5, 6, 7),
        (1, 4, 5, 6, 7),
    ),
    ({"spatial_dims": 3, "in_channels": 6, "norm": "instance"}, (2, 6, 3, 5, 4), (2, 6, 3, 5, 4)),
]

BAD_ARGS = [
    ({"spatial_dims": 1, "in_channels": 8}, "spatial_dims"),
    ({"spatial_dims": 4, "in_channels": 8}, "spatial_dims"),
    ({"spatial_dims": 2, "in_channels": 0}, "in_channels"),
    ({"spatial_dims": 2, "in_channels": 8, "key_channels": 0}, "key_channels"),
    ({"spatial_dims": 2, "in_channels": 8, "value_channels": -1}, "value_channels"),
]


def perturb(block: DoubleAttentionBlock) -> None:
    """Move the block off its zero initialisation so that the attention branch contributes."""
    gamma = getattr(block.norm, "weight", None)
    if isinstance(gamma, nn.Parameter):
        nn.init.ones_(gamma)
    else:
        nn.init.normal_(block.conv_out.weight)


@pytest.mark.parametrize("kwargs, in_shape, out_shape", CASES)
def test_shape(kwargs, in_shape, out_shape):
    torch.manual_seed(0)
    block = DoubleAttentionBlock(**kwargs).eval()
    perturb(block)
    with torch.no_grad():
        assert block(torch.randn(in_shape)).shape == out_shape


@pytest.mark.parametrize("kwargs, in_shape, out_shape", CASES)
@pytest.mark.parametrize("train", [False, True])
def test_identity_at_init(kwargs, in_shape, out_shape, train):
    torch.manual_seed(0)
    block = DoubleAttentionBlock(**kwargs).train(train)
    x = torch.randn(in_shape)
    assert torch.equal(block(x), x)


@pytest.mark.parametrize("kwargs, in_shape, out_shape", CASES)
def test_global_receptive_field(kwargs, in_shape, out_shape):
    torch.manual_seed(0)
    block = DoubleAttentionBlock(**kwargs).eval()
    perturb(block)
    x = torch.randn(in_shape, requires_grad=True)
    out = block(x)
    assert not torch.allclose(out, x)

    centre = [s // 2 for s in in_shape[2:]]
    out[(0, slice(None), *centre)].sum().backward()
    assert (x.grad[0].abs().sum(0) > 0).all()


@pytest.mark.parametrize("kwargs, in_shape, out_shape", CASES)
def test_torchscript(kwargs, in_shape, out_shape):
    torch.manual_seed(0)
    block = DoubleAttentionBlock(**kwargs).eval()
    perturb(block)
    scripted = torch.jit.script(block)
    x = torch.randn(in_shape)
    with torch.no_grad():
        expected = block(x)
        for _ in range(2):  # the profiling executor optimises the graph on a later call
            torch.testing.assert_close(scripted(x), expected)


def test_default_channels():
    block = DoubleAttentionBlock(2, 256)
    assert (block.key_channels, block.value_channels) == (64, 64)
    block = DoubleAttentionBlock(2, 3)
    assert (block.key_channels, block.value_channels) == (1, 1)


@pytest.mark.parametrize("kwargs, match", BAD_ARGS)
def test_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DoubleAttentionBlock(**kwargs)


@pytest.mark.parametrize("in_shape", [(2, 3, 9, 7), (2, 8, 9), (2, 8, 9, 7, 5)])
def test_bad_input(in_shape):
    block = DoubleAttentionBlock(2, 8)
    with pytest.raises(ValueError, match=r"\(batch, 8, 2 spatial dims\), got shape"):
        block(torch.randn(in_shape))
