"""The blocks the paper compares SRB with: Non-local (Wang et al. 2018) and A²-Net (Chen et al. 2018)."""

from __future__ import annotations

import pytest
import torch
from monai.networks.layers.factories import Pool
from torch import nn

from monai_srb.blocks.double_attention import DoubleAttentionBlock
from monai_srb.blocks.nonlocal_block import NonLocalBlock

GROUP = ("group", {"num_groups": 2})
# (block class, constructor kwargs, input shape); the output has the input's shape. Odd sizes on purpose.
CASES = [
    (NonLocalBlock, {"spatial_dims": 2, "in_channels": 8}, (2, 8, 9, 7)),
    (NonLocalBlock, {"spatial_dims": 2, "in_channels": 8, "inter_channels": 3, "sub_sample": True}, (2, 8, 9, 7)),
    (NonLocalBlock, {"spatial_dims": 2, "in_channels": 8, "norm": None}, (2, 8, 9, 7)),
    (NonLocalBlock, {"spatial_dims": 2, "in_channels": 1}, (2, 1, 5, 3)),
    (NonLocalBlock, {"spatial_dims": 3, "in_channels": 4}, (1, 4, 5, 6, 7)),
    (NonLocalBlock, {"spatial_dims": 3, "in_channels": 4, "sub_sample": True, "norm": GROUP}, (1, 4, 5, 6, 7)),
    (NonLocalBlock, {"spatial_dims": 3, "in_channels": 6, "norm": "instance"}, (2, 6, 3, 5, 4)),
    (DoubleAttentionBlock, {"spatial_dims": 2, "in_channels": 8}, (2, 8, 9, 7)),
    (DoubleAttentionBlock, {"spatial_dims": 2, "in_channels": 8, "key_channels": 3, "value_channels": 5}, (2, 8, 9, 7)),
    (DoubleAttentionBlock, {"spatial_dims": 2, "in_channels": 8, "norm": None}, (2, 8, 9, 7)),
    (DoubleAttentionBlock, {"spatial_dims": 2, "in_channels": 1}, (2, 1, 5, 3)),
    (DoubleAttentionBlock, {"spatial_dims": 3, "in_channels": 4}, (1, 4, 5, 6, 7)),
    (
        DoubleAttentionBlock,
        {"spatial_dims": 3, "in_channels": 4, "key_channels": 2, "value_channels": 3, "norm": GROUP},
        (1, 4, 5, 6, 7),
    ),
    (DoubleAttentionBlock, {"spatial_dims": 3, "in_channels": 6, "norm": "instance"}, (2, 6, 3, 5, 4)),
]
IDS = [f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)]

BAD_ARGS = [
    (block, kwargs, match)
    for block in (NonLocalBlock, DoubleAttentionBlock)
    for kwargs, match in [
        ({"spatial_dims": 1, "in_channels": 8}, "spatial_dims"),
        ({"spatial_dims": 4, "in_channels": 8}, "spatial_dims"),
        ({"spatial_dims": 2, "in_channels": 0}, "in_channels"),
    ]
] + [
    (NonLocalBlock, {"spatial_dims": 2, "in_channels": 8, "inter_channels": 0}, "inter_channels"),
    (NonLocalBlock, {"spatial_dims": 2, "in_channels": 8, "inter_channels": 2.5}, r"inter_channels .*2\.5 \(float\)"),
    (DoubleAttentionBlock, {"spatial_dims": 2, "in_channels": 8, "key_channels": 0}, "key_channels"),
    (DoubleAttentionBlock, {"spatial_dims": 2, "in_channels": 8, "value_channels": -1}, "value_channels"),
    (DoubleAttentionBlock, {"spatial_dims": 2, "in_channels": 8, "key_channels": "2"}, r"key_channels .*'2' \(str\)"),
]


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


def _double_attention_reference(block: DoubleAttentionBlock, x: torch.Tensor) -> torch.Tensor:
    """Chen et al. Eqn. 3-5: G = A softmax_N(B)^T gathers, Z = G softmax_n(V) distributes, y = x + norm(W Z)."""
    flat = x.flatten(2)
    features = _conv1x1(block.conv_a, flat)  # (batch, m, N)
    maps = torch.softmax(_conv1x1(block.conv_b, flat), dim=2)  # (batch, n, N), over positions
    vectors = torch.softmax(_conv1x1(block.conv_v, flat), dim=1)  # (batch, n, N), over descriptors
    descriptors = torch.einsum("bmp,bnp->bmn", features, maps)
    z = torch.einsum("bmn,bnp->bmp", descriptors, vectors)
    return x + block.norm(_conv1x1(block.conv_out, z).reshape(x.shape))


# (block class, constructor kwargs, input shape) for the comparison with the einsum references.
REFERENCE_CASES = [
    (NonLocalBlock, {"spatial_dims": 2, "in_channels": 8}, (2, 8, 9, 7)),
    (NonLocalBlock, {"spatial_dims": 2, "in_channels": 6, "inter_channels": 3, "sub_sample": True}, (2, 6, 9, 7)),
    (NonLocalBlock, {"spatial_dims": 2, "in_channels": 4, "norm": None}, (1, 4, 4, 12)),
    (NonLocalBlock, {"spatial_dims": 3, "in_channels": 4, "norm": GROUP}, (2, 4, 5, 6, 3)),
    (NonLocalBlock, {"spatial_dims": 3, "in_channels": 6, "sub_sample": True, "norm": None}, (1, 6, 5, 4, 7)),
    (DoubleAttentionBlock, {"spatial_dims": 2, "in_channels": 8}, (2, 8, 9, 7)),
    (DoubleAttentionBlock, {"spatial_dims": 2, "in_channels": 8, "key_channels": 3, "value_channels": 5}, (2, 8, 6, 5)),
    (DoubleAttentionBlock, {"spatial_dims": 2, "in_channels": 4, "norm": None}, (1, 4, 4, 12)),
    (DoubleAttentionBlock, {"spatial_dims": 3, "in_channels": 6, "key_channels": 4, "norm": GROUP}, (2, 6, 5, 6, 3)),
    (DoubleAttentionBlock, {"spatial_dims": 3, "in_channels": 4, "norm": None}, (1, 4, 5, 4, 7)),
]
REFERENCE_IDS = [f"{c[0].__name__}-{i}" for i, c in enumerate(REFERENCE_CASES)]


@pytest.mark.parametrize("block,kwargs,shape", REFERENCE_CASES, ids=REFERENCE_IDS)
def test_matches_einsum_reference(block, kwargs, shape):
    torch.manual_seed(0)
    module = _randomised(block(**kwargs), seed=1).double().eval()
    x = torch.randn(shape, dtype=torch.float64)
    with torch.no_grad():
        if block is NonLocalBlock:
            expected = _nonlocal_reference(module, x, kwargs.get("sub_sample", False))
        else:
            expected = _double_attention_reference(module, x)
        out = module(x)
    assert (expected - x).abs().mean() > 0.1  # the attention branch is far from the identity
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("block,kwargs,shape", CASES, ids=IDS)
def test_shape(block, kwargs, shape):
    torch.manual_seed(0)
    with torch.no_grad():
        assert _perturbed(block(**kwargs).eval())(torch.randn(shape)).shape == shape


@pytest.mark.parametrize("block,kwargs,shape", CASES, ids=IDS)
@pytest.mark.parametrize("train", [False, True])
def test_identity_at_init(block, kwargs, shape, train):
    torch.manual_seed(0)
    x = torch.randn(shape)
    assert torch.equal(block(**kwargs).train(train)(x), x)


@pytest.mark.parametrize("block,kwargs,shape", CASES, ids=IDS)
def test_global_receptive_field(block, kwargs, shape):
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


@pytest.mark.parametrize("block,kwargs,shape", CASES, ids=IDS)
def test_torchscript(block, kwargs, shape):
    torch.manual_seed(0)
    module = _perturbed(block(**kwargs).eval())
    scripted = torch.jit.script(module)
    x = torch.randn(shape)
    with torch.no_grad():
        expected = module(x)
        for _ in range(2):  # the profiling executor optimises the graph on a later call
            torch.testing.assert_close(scripted(x), expected)


@pytest.mark.parametrize(
    "build,attributes,expected",
    [
        (lambda: NonLocalBlock(2, 256), ("inter_channels",), (128,)),
        (lambda: NonLocalBlock(2, 1), ("inter_channels",), (1,)),
        (lambda: DoubleAttentionBlock(2, 256), ("key_channels", "value_channels"), (64, 64)),
        (lambda: DoubleAttentionBlock(2, 3), ("key_channels", "value_channels"), (1, 1)),
    ],
)
def test_default_widths(build, attributes, expected):
    block = build()
    assert tuple(getattr(block, a) for a in attributes) == expected


@pytest.mark.parametrize("block,kwargs,match", BAD_ARGS)
def test_bad_args(block, kwargs, match):
    with pytest.raises(ValueError, match=match):
        block(**kwargs)


@pytest.mark.parametrize("block", [NonLocalBlock, DoubleAttentionBlock])
@pytest.mark.parametrize("shape", [(2, 3, 9, 7), (2, 8, 9), (2, 8, 9, 7, 5)])
def test_bad_input(block, shape):
    with pytest.raises(ValueError, match=r"\(batch, 8, 2 spatial dims\), got shape"):
        block(2, 8)(torch.randn(shape))
