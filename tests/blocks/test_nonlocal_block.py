from __future__ import annotations

import pytest
import torch
from monai.networks.layers.factories import Pool
from torch import nn

from monai_srb.blocks.nonlocal_block import NonLocalBlock

# (constructor kwargs, input shape, expected output shape); odd sizes on purpose.
CASES = [
    ({"spatial_dims": 2, "in_channels": 8}, (2, 8, 9, 7), (2, 8, 9, 7)),
    ({"spatial_dims": 2, "in_channels": 8, "inter_channels": 3, "sub_sample": True}, (2, 8, 9, 7), (2, 8, 9, 7)),
    ({"spatial_dims": 2, "in_channels": 8, "norm": None}, (2, 8, 9, 7), (2, 8, 9, 7)),
    ({"spatial_dims": 2, "in_channels": 1}, (2, 1, 5, 3), (2, 1, 5, 3)),
    ({"spatial_dims": 3, "in_channels": 4}, (1, 4, 5, 6, 7), (1, 4, 5, 6, 7)),
    (
        {"spatial_dims": 3, "in_channels": 4, "sub_sample": True, "norm": ("group", {"num_groups": 2})},
        (1, 4, 5, 6, 7),
        (1, 4, 5, 6, 7),
    ),
    ({"spatial_dims": 3, "in_channels": 6, "norm": "instance"}, (2, 6, 3, 5, 4), (2, 6, 3, 5, 4)),
]

BAD_ARGS = [
    ({"spatial_dims": 1, "in_channels": 8}, "spatial_dims"),
    ({"spatial_dims": 4, "in_channels": 8}, "spatial_dims"),
    ({"spatial_dims": 2, "in_channels": 0}, "in_channels"),
    ({"spatial_dims": 2, "in_channels": 8, "inter_channels": 0}, "inter_channels"),
]


def perturb(block: NonLocalBlock) -> None:
    """Move the block off its zero initialisation so that the non-local branch contributes."""
    gamma = getattr(block.norm, "weight", None)
    if isinstance(gamma, nn.Parameter):
        nn.init.ones_(gamma)
    else:
        nn.init.normal_(block.w_z.weight)


@pytest.mark.parametrize("kwargs, in_shape, out_shape", CASES)
def test_shape(kwargs, in_shape, out_shape):
    torch.manual_seed(0)
    block = NonLocalBlock(**kwargs).eval()
    perturb(block)
    with torch.no_grad():
        assert block(torch.randn(in_shape)).shape == out_shape


@pytest.mark.parametrize("kwargs, in_shape, out_shape", CASES)
@pytest.mark.parametrize("train", [False, True])
def test_identity_at_init(kwargs, in_shape, out_shape, train):
    torch.manual_seed(0)
    block = NonLocalBlock(**kwargs).train(train)
    x = torch.randn(in_shape)
    assert torch.equal(block(x), x)


@pytest.mark.parametrize("kwargs, in_shape, out_shape", CASES)
def test_global_receptive_field(kwargs, in_shape, out_shape):
    torch.manual_seed(0)
    block = NonLocalBlock(**kwargs).eval()
    perturb(block)
    x = torch.randn(in_shape, requires_grad=True)
    out = block(x)
    assert not torch.allclose(out, x)

    centre = [s // 2 for s in in_shape[2:]]
    out[(0, slice(None), *centre)].sum().backward()
    reach = x.grad[0].abs().sum(0)
    if kwargs.get("sub_sample", False):
        # Max-pooling routes the gradient to one position per window; every window must still be reached.
        spatial_dims = kwargs["spatial_dims"]
        reach = Pool[Pool.MAX, spatial_dims](kernel_size=2, ceil_mode=True)(reach[None])[0]
    assert (reach > 0).all()


@pytest.mark.parametrize("kwargs, in_shape, out_shape", CASES)
def test_torchscript(kwargs, in_shape, out_shape):
    torch.manual_seed(0)
    block = NonLocalBlock(**kwargs).eval()
    perturb(block)
    scripted = torch.jit.script(block)
    x = torch.randn(in_shape)
    with torch.no_grad():
        expected = block(x)
        for _ in range(2):  # the profiling executor optimises the graph on a later call
            torch.testing.assert_close(scripted(x), expected)


def test_default_inter_channels():
    assert NonLocalBlock(2, 256).inter_channels == 128
    assert NonLocalBlock(2, 1).inter_channels == 1


@pytest.mark.parametrize("kwargs, match", BAD_ARGS)
def test_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NonLocalBlock(**kwargs)


@pytest.mark.parametrize("in_shape", [(2, 3, 9, 7), (2, 8, 9), (2, 8, 9, 7, 5)])
def test_bad_input(in_shape):
    block = NonLocalBlock(2, 8)
    with pytest.raises(ValueError, match=r"\(batch, 8, 2 spatial dims\), got shape"):
        block(torch.randn(in_shape))
