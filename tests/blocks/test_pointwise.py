from __future__ import annotations

import pytest
import torch
from monai.networks.layers.factories import Conv

from monai_srb.blocks.pointwise import GroupedPointwiseConv

# (spatial_dims, in_channels, out_channels, groups, input shape)
CASES = [
    (2, 8, 4, 4, (2, 8, 9, 7)),
    (2, 6, 6, 1, (1, 6, 5, 5)),
    (2, 128, 64, 32, (2, 128, 16, 9)),
    (3, 4, 8, 2, (2, 4, 3, 5, 4)),
]


@pytest.mark.parametrize("dims,cin,cout,groups,shape", CASES)
def test_matches_grouped_conv(dims, cin, cout, groups, shape):
    torch.manual_seed(0)
    layer = GroupedPointwiseConv(dims, cin, cout, groups)
    torch.manual_seed(0)
    conv = Conv[Conv.CONV, dims](cin, cout, kernel_size=1, groups=groups, bias=False)
    assert torch.equal(layer.weight, conv.weight)  # same shape and initialisation as the conv
    x = torch.randn(shape, requires_grad=True)
    out = layer(x)
    torch.testing.assert_close(out, conv(x))
    g = torch.randn_like(out)
    (gx,) = torch.autograd.grad(out, x, g)
    (gx_ref,) = torch.autograd.grad(conv(x), x, g)
    torch.testing.assert_close(gx, gx_ref)


def test_bad_groups():
    with pytest.raises(ValueError, match="groups"):
        GroupedPointwiseConv(2, 6, 4, 4)
