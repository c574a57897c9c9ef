"""The Non-local block (Wang et al. 2018), one of the blocks the paper compares SRB with.

The helpers and the checks that every attention block passes (shape, identity at init, a global
receptive field, TorchScript, bad arguments) are defined here; tests/blocks/test_double_attention.py
imports the helpers and runs the same checks on A²-Net's block.
"""

from __future__ import annotations

import pytest
import torch
from monai.networks.layers.factories import Pool
from torch import nn

from monai_srb.blocks.nonlocal_block import NonLocalBlock

GROUP = ("group", {"num_groups": 2})
# (constructor kwargs, input shape); the output has the input's shape. Odd sizes on purpose.
CASES = [
    ({"spatial_dims": 2, "in_channels": 8}, (2, 8, 9, 7)),
    ({"spatial_dims": 2, "in_channels": 8, "inter_channels": 3, "sub_sample": True}, (2, 8, 9, 7)),
    ({"spatial_dims": 2, "in_channels": 8, "norm": None}, (2, 8, 9, 7)),
    ({"spatial_dims": 2, "in_channels": 1}, (2, 1, 5, 3)),
    ({"spatial_dims": 3, "in_channels": 4}, (1, 4, 5, 6, 7)),
    ({"spatial_dims": 3, "in_channels": 4, "sub_sample": True, "norm": GROUP}, (1, 4, 5, 6, 7)),
    ({"spatial_dims": 3, "in_channels": 6, "norm": "instance"}, (2, 6, 3, 5, 4)),
]
# Arguments every attention block refuses, then the Non-local block's own.
COMMON_BAD_ARGS = [
    ({"spatial_dims": 1, "in_channels": 8}, "spatial_dims"),
    ({"spatial_dims": 4, "in_channels": 8}, "spatial_dims"),
    ({"spatial_dims": 2, "in_channels": 0}, "in_channels"),
]
BAD_ARGS = COMMON_BAD_ARGS + [
    ({"spatial_dims": 2, "in_channels": 8, "inter_channels": 0}, "inter_channels"),
    ({"spatial_dims": 2, "in_channels": 8, "inter_channels": 2.5}, r"inter_channels .*2\.5 \(float\)"),
]
BAD_INPUT_SHAPES = [(2, 3, 9, 7), (2, 8, 9), (2, 8, 9, 7, 5)]


def _perturbed(block: nn.Module) -> nn.Module:
    """Move the block off its zero initialisation so that the attention branch contributes."""
    gamma = getattr(block.norm, "weight", None)
    if isinstance(gamma, nn.Parameter):
        nn.init.ones_(gamma)
    else:  # no affine norm: the zero sits in the output conv
        nn.init.normal_((block.w_z if isinstance(block, NonLocalBlock) else block.conv_out).weight)
    return block


def _randomised(block: nn.Module, seed: int) -> nn.Module:
    """Every weight drawn at random (the output conv and the norm's gamma included), so the attention counts."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return block


def _conv1x1(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 conv written out on flattened positions: (batch, C_in, N) -> (batch, C_out, N)."""
    out = torch.einsum("oc,bcn->bon", conv.weight.flatten(1), x)
    return out if conv.bias is None else out + conv.bias[:, None]


def check_shape(block: type[nn.Module], kwargs: dict, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    with torch.no_grad():
        assert _perturbed(block(**kwargs).eval())(torch.randn(shape)).shape == shape


def check_identity_at_init(block: type[nn.Module], kwargs: dict, shape: tuple[int, ...], train: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(shape)
    assert torch.equal(block(**kwargs).train(train)(x), x)


def check_global_receptive_field(block: type[nn.Module], kwargs: dict, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    module = _perturbed(block(**kwargs).eval())
    x = torch.randn(shape, requires_grad=True)
    out = module(x)
    assert not torch.allclose(out, x)
    centre = [s // 2 for s in shape[2:]]
    out[(0, slice(None), *centre)].sum().backward()
    reach = x.grad[0].abs().sum(0)
    if kwargs.get("sub_sample", False):
        # Max-pooling routes the gradient to one position per window; every window must still be reached.
        reach = Pool[Pool.MAX, kwargs["spatial_dims"]](kernel_size=2, ceil_mode=True)(reach[None])[0]
    assert (reach > 0).all()


def check_torchscript(block: type[nn.Module], kwargs: dict, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    module = _perturbed(block(**kwargs).eval())
    scripted = torch.jit.script(module)
    x = torch.randn(shape)
    with torch.no_grad():
        expected = module(x)
        for _ in range(2):  # the profiling executor optimises the graph on a later call
            torch.testing.assert_close(scripted(x), expected)


def check_bad_input(block: type[nn.Module], shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\(batch, 8, 2 spatial dims\), got shape"):
        block(2, 8)(torch.randn(shape))


def _nonlocal_reference(block: NonLocalBlock, x: torch.Tensor, sub_sample: bool) -> torch.Tensor:
    """Wang et al. Eqn. 1 and 6: y_i = sum_j softmax_j(theta_i . phi_j) g_j, z = x + norm(W_z y)."""
    flat = x.flatten(2)
    theta, phi, g = (_conv1x1(conv, flat) for conv in (block.theta, block.phi, block.g))
    if sub_sample:
        pool = Pool[Pool.MAX, x.ndim - 2](kernel_size=2, ceil_mode=True)
        phi, g = (pool(t.reshape(x.shape[:1] + (-1,) + x.shape[2:])).flatten(2) for t in (phi, g))
    attention = torch.softmax(torch.einsum("bkn,bkm->bnm", theta, phi), dim=2)  # (batch, N, M)
    y = torch.einsum("bnm,bkm->bkn", attention, g)
    # The norm is a stock MONAI layer, applied as it is: the reference checks the attention around it.
    return x + block.norm(_conv1x1(block.w_z, y).reshape(x.shape))


# (constructor kwargs, input shape) for the comparison with the einsum reference.
REFERENCE_CASES = [
    ({"spatial_dims": 2, "in_channels": 8}, (2, 8, 9, 7)),
    ({"spatial_dims": 2, "in_channels": 6, "inter_channels": 3, "sub_sample": True}, (2, 6, 9, 7)),
    ({"spatial_dims": 2, "in_channels": 4, "norm": None}, (1, 4, 4, 12)),
    ({"spatial_dims": 3, "in_channels": 4, "norm": GROUP}, (2, 4, 5, 6, 3)),
    ({"spatial_dims": 3, "in_channels": 6, "sub_sample": True, "norm": None}, (1, 6, 5, 4, 7)),
]


@pytest.mark.parametrize("kwargs,shape", REFERENCE_CASES)
def test_matches_einsum_reference(kwargs, shape):
    torch.manual_seed(0)
    module = _randomised(NonLocalBlock(**kwargs), seed=1).double().eval()
    x = torch.randn(shape, dtype=torch.float64)
    with torch.no_grad():
        expected = _nonlocal_reference(module, x, kwargs.get("sub_sample", False))
        out = module(x)
    assert (expected - x).abs().mean() > 0.1  # the attention branch is far from the identity
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("kwargs,shape", CASES)
def test_shape(kwargs, shape):
    check_shape(NonLocalBlock, kwargs, shape)


@pytest.mark.parametrize("kwargs,shape", CASES)
@pytest.mark.parametrize("train", [False, True])
def test_identity_at_init(kwargs, shape, train):
    check_identity_at_init(NonLocalBlock, kwargs, shape, train)


@pytest.mark.parametrize("kwargs,shape", CASES)
def test_global_receptive_field(kwargs, shape):
    check_global_receptive_field(NonLocalBlock, kwargs, shape)


@pytest.mark.parametrize("kwargs,shape", CASES)
def test_torchscript(kwargs, shape):
    check_torchscript(NonLocalBlock, kwargs, shape)


@pytest.mark.parametrize("in_channels,expected", [(256, 128), (1, 1)])
def test_default_widths(in_channels, expected):
    assert NonLocalBlock(2, in_channels).inter_channels == expected


@pytest.mark.parametrize("kwargs,match", BAD_ARGS)
def test_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NonLocalBlock(**kwargs)


@pytest.mark.parametrize("shape", BAD_INPUT_SHAPES)
def test_bad_input(shape):
    check_bad_input(NonLocalBlock, shape)
