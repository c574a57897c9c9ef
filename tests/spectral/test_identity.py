"""
SRB_I, the ablation control: the identity ``f`` gives SRB_F's parameter count and ``phi`` without any mixing across
positions, by name in blocks, ``insert_blocks`` and the three bundles.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser
from monai.networks.nets import BasicUNet

from monai_srb.blocks import SpectralResidualBlock, make_block
from monai_srb.nets import insert_blocks
from monai_srb.spectral import IdentityTransform

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _activate(block: SpectralResidualBlock) -> SpectralResidualBlock:
    torch.manual_seed(1)
    with torch.no_grad():
        block.alpha.fill_(1.0)
        for p in block.phi.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return block.eval()


# (spatial_dims, in_channels, spatial_size, reduction, groups)
PARAM_CASES = [
    (2, 32, None, 2, None),
    (2, 16, (16, 16), 2, None),
    (2, 16, (12, 21), 2, None),
    (2, 64, (8, 8), 4, 4),
    (3, 8, (6, 8, 10), 2, None),
    (3, 16, None, 2, 2),
]


@pytest.mark.parametrize("spatial_dims,channels,size,reduction,groups", PARAM_CASES)
def test_srb_i_has_srb_f_s_parameters(spatial_dims, channels, size, reduction, groups):
    kwargs = {"spatial_size": size, "reduction": reduction, "groups": groups}
    srb_f = SpectralResidualBlock(spatial_dims, channels, "fft", **kwargs)
    srb_i = SpectralResidualBlock(spatial_dims, channels, "identity", **kwargs)
    assert _count(srb_i) == _count(srb_f)
    shapes = {n: p.shape for n, p in srb_f.named_parameters()}
    assert {n: p.shape for n, p in srb_i.named_parameters()} == shapes


@pytest.mark.parametrize("spatial_dims,shape", [(2, (3, 4, 7, 10)), (2, (1, 2, 9, 9)), (3, (2, 2, 3, 5, 4))])
def test_identity_is_an_isometry_with_its_adjoint_as_inverse(spatial_dims, shape):
    torch.manual_seed(0)
    f = IdentityTransform(spatial_dims)
    x = torch.randn(shape, dtype=torch.float64)
    z = f(x)
    assert z.shape == (shape[0], 2 * shape[1], *shape[2:])
    torch.testing.assert_close(z.norm(), x.norm())
    torch.testing.assert_close(f.inverse(z, list(shape[2:])), x)
    w = torch.randn_like(z)  # <f x, w> = <x, f^-1 w>: the inverse is the adjoint
    torch.testing.assert_close((z * w).sum(), (x * f.inverse(w, list(shape[2:]))).sum())


@pytest.mark.parametrize(
    "transform,spatial_dims,size",
    [("identity", 2, (9, 12)), ("identity", 3, (5, 6, 7)), ("fft", 2, (9, 12)), ("fft", 3, (5, 6, 7))],
)
def test_the_branch_of_srb_i_reaches_one_pixel_and_srb_f_s_every_pixel(transform, spatial_dims, size):
    torch.manual_seed(0)
    block = _activate(SpectralResidualBlock(spatial_dims, 4, transform, spatial_size=size))
    x = torch.randn((2, 4, *size), requires_grad=True)
    probe = tuple(s // 3 for s in size)
    block._branch(x, list(size))[(0, slice(None)) + probe].sum().backward()
    reached = x.grad[0].abs().sum(0) > 0
    if transform == "identity":
        expected = torch.zeros(size, dtype=torch.bool)
        expected[probe] = True
        assert torch.equal(reached, expected)
    else:
        assert reached.all()
    assert x.grad[1].abs().sum() == 0


@pytest.mark.parametrize("size", [(16, 16), (10, 24), (33, 17)])
def test_srb_i_takes_any_input_size(size):
    block = _activate(SpectralResidualBlock(2, 8, "identity"))
    x = torch.randn(2, 8, *size)
    out = block(x)
    assert out.shape == x.shape and torch.isfinite(out).all() and not torch.equal(out, x)


def test_srb_i_by_name_in_make_block_and_insert_blocks():
    assert isinstance(make_block("srb_identity", 2, 8).f, IdentityTransform)
    torch.manual_seed(0)
    net = BasicUNet(2, 1, 2, features=(8, 8, 16, 32, 64, 8)).eval()
    x = torch.randn(1, 1, 32, 32)
    before = net(x)
    insert_blocks(net, ["upcat_4", "upcat_1"], block="srb_identity", example_input=x)
    assert isinstance(net.upcat_4.block.f, IdentityTransform) and isinstance(net.upcat_1.block.f, IdentityTransform)
    torch.testing.assert_close(net(x), before)  # alpha = 0: the network computes what it did


# (bundle, overrides): every bundle builds its network with block srb_identity, by name, from its config.
BUNDLE_CASES = [
    ("srb_skin_lesion_segmentation", {"block": "srb_identity", "image_size": 32}),
    ("srb_chest_xray_classification", {"block": "srb_identity", "image_size": 32}),
    ("srb_3d_segmentation", {"block": "srb_identity"}),
]


@pytest.mark.parametrize("bundle,overrides", BUNDLE_CASES)
def test_srb_i_by_name_in_the_bundles(bundle, overrides, tmp_path):
    parser = ConfigParser()
    parser.read_config(str(BUNDLES / bundle / "configs" / "train.json"))
    parser.update({"bundle_root": str(BUNDLES / bundle), "output_dir": str(tmp_path), "in_channels": 1,
                   "image_channels": 1, **overrides})
    network = parser.get_parsed_content("network_def")
    blocks = [m for m in network.modules() if isinstance(m, SpectralResidualBlock)]
    assert blocks and all(isinstance(b.f, IdentityTransform) for b in blocks)
