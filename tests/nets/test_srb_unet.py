from __future__ import annotations

import copy

import pytest
import torch
from monai.networks.nets import BasicUNet
from torch import nn

from monai_srb.nets.srb_unet import PAPER_UNET_FEATURES, SRB_POSITIONS, SRBUNet

ALL_UP = [f"before_up{n}" for n in (1, 2, 3, 4)]

# (constructor kwargs, input shape, expected output shape).
CASES = [
    ({"spatial_dims": 2, "in_channels": 3, "out_channels": 2}, (1, 3, 64, 64), (1, 2, 64, 64)),
    (
        {"spatial_dims": 2, "in_channels": 3, "out_channels": 2, "srb_positions": SRB_POSITIONS, "spatial_size": 64},
        (1, 3, 64, 64),
        (1, 2, 64, 64),
    ),
    (
        {"spatial_dims": 2, "in_channels": 1, "out_channels": 3, "srb_positions": ALL_UP, "block": "srb_aom",
         "spatial_size": (64, 48)},
        (1, 1, 64, 48),
        (1, 3, 64, 48),
    ),
    (
        {"spatial_dims": 2, "in_channels": 3, "out_channels": 2, "srb_positions": ("after_up4", "after_up1"),
         "block": "srb_dct", "reduction": 4},
        (2, 3, 64, 64),
        (2, 2, 64, 64),
    ),
    (
        {"spatial_dims": 2, "in_channels": 3, "out_channels": 2, "srb_positions": "before_up4", "block": "srb_aom",
         "unet_star": True, "spatial_size": 64},
        (1, 3, 64, 64),
        (1, 2, 64, 64),
    ),
    (
        {"spatial_dims": 2, "in_channels": 3, "out_channels": 2, "srb_positions": SRB_POSITIONS, "unet_star": True,
         "unet_args": {"norm": "batch", "upsample": "nontrainable"}},
        (2, 3, 64, 64),
        (2, 2, 64, 64),
    ),
    (
        {"spatial_dims": 2, "in_channels": 3, "out_channels": 2, "srb_positions": ("before_up4", "after_up2"),
         "block": "nonlocal"},
        (1, 3, 64, 64),
        (1, 2, 64, 64),
    ),
    (
        {"spatial_dims": 2, "in_channels": 3, "out_channels": 2, "srb_positions": ("before_up3",),
         "block": "double_attention", "unet_star": True},
        (1, 3, 64, 64),
        (1, 2, 64, 64),
    ),
    # Odd sizes: BasicUNet pads, the FFT blocks resample their spectral ReLU.
    (
        {"spatial_dims": 2, "in_channels": 3, "out_channels": 2, "srb_positions": ALL_UP},
        (1, 3, 50, 36),
        (1, 2, 50, 36),
    ),
    (
        {"spatial_dims": 3, "in_channels": 1, "out_channels": 2, "srb_positions": ("before_up4", "after_up1"),
         "spatial_size": 32},
        (1, 1, 32, 32, 32),
        (1, 2, 32, 32, 32),
    ),
    (
        {"spatial_dims": 3, "in_channels": 1, "out_channels": 2, "srb_positions": ("before_up4", "before_up2"),
         "block": "srb_aom", "unet_star": True, "spatial_size": 32},
        (1, 1, 32, 32, 32),
        (1, 2, 32, 32, 32),
    ),
]

# (position, unet_star, expected (channels, *spatial) of the map the block sees for a 64 x 64 input).
GEOMETRY = [
    ("before_up4", False, (256, 4, 4)),
    ("before_up4", True, (256, 8, 8)),
    ("after_up4", False, (128, 8, 8)),
    ("after_up4", True, (128, 8, 8)),
    ("before_up3", False, (128, 8, 8)),
    ("after_up3", False, (64, 16, 16)),
    ("before_up2", True, (64, 16, 16)),
    ("after_up2", False, (32, 32, 32)),
    ("before_up1", False, (32, 32, 32)),
    ("after_up1", True, (16, 64, 64)),
]

BAD_ARGS = [
    ({"srb_positions": ("before_up5",)}, r"By 'before_up5', did you mean 'before_up\d'"),
    ({"srb_positions": ("before_up4", "middle")}, "middle"),
    ({"srb_positions": ("after_up2", "after_up2")}, "repeat"),
    ({"spatial_size": 40}, r"spatial_size must be a multiple of 16 per spatial dim \(U-Net: 4 max-poolings\), got 40"),
    ({"spatial_size": (64, 72)}, r"a multiple of 16 .*got \(64, 72\)"),
    ({"spatial_size": 36, "unet_star": True}, r"a multiple of 8 per spatial dim \(U-Net\*: 3 max-poolings\), got 36"),
    ({"spatial_size": 16}, r"with instance norm this U-Net's deepest map .*needs at least 2 positions.*got 16"),
    ({"spatial_size": (8, 8), "unet_star": True}, r"floored by 8 per axis\) needs at least 2 positions.*got \(8, 8\)"),
    ({"spatial_size": (64, 64, 64)}, r"spatial_size .*\(3 entries\)"),
    ({"spatial_size": 0}, r"spatial_size .*got 0 \(int\)"),
    ({"spatial_size": 64.5}, r"spatial_size .*got 64.5 \(float\)"),
    ({"block": "srb_aom"}, "spatial_size"),
    ({"block": "fourier"}, r"Unsupported option 'fourier'"),
    ({"reduction": 3}, "reduction"),
]


def without_blocks(net: SRBUNet) -> SRBUNet:
    """The same network, sharing no state, with every inserted block replaced by ``nn.Identity``."""
    plain = copy.deepcopy(net)
    for position in SRB_POSITIONS:
        setattr(plain, f"srb_{position}", nn.Identity())
    return plain


def make(kwargs: dict) -> SRBUNet:
    torch.manual_seed(0)
    return SRBUNet(**kwargs)


@pytest.mark.parametrize("kwargs, in_shape, out_shape", CASES)
def test_shape(kwargs, in_shape, out_shape):
    net = make(kwargs).eval()
    with torch.no_grad():
        assert net(torch.randn(in_shape)).shape == out_shape


@pytest.mark.parametrize("kwargs, in_shape, out_shape", CASES)
@pytest.mark.parametrize("train", [False, True])
def test_identity_at_init(kwargs, in_shape, out_shape, train):
    net = make(kwargs).train(train)
    plain = without_blocks(net).train(train)
    x = torch.randn(in_shape)
    with torch.no_grad():
        y = net(x)
        torch.testing.assert_close(y, plain(x), rtol=0, atol=1e-6)
        if not kwargs.get("unet_star", False):
            unet_args = kwargs.get("unet_args", {})
            basic = BasicUNet(kwargs["spatial_dims"], kwargs["in_channels"], kwargs["out_channels"],
                              features=PAPER_UNET_FEATURES, **unet_args).train(train)
            basic.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("srb_")})
            torch.testing.assert_close(y, basic(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("position, unet_star, expected", GEOMETRY)
def test_position_geometry(position, unet_star, expected):
    """Each position's block sees the map the docstring's table names, and lies on the forward path."""
    net = make({"spatial_dims": 2, "in_channels": 3, "out_channels": 2, "srb_positions": (position,),
                "unet_star": unet_star, "spatial_size": 64}).eval()
    block = getattr(net, f"srb_{position}")
    seen = []
    block.register_forward_hook(lambda module, args, out: seen.append(tuple(args[0].shape[1:])))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        y0 = net(x)
        block.alpha.fill_(1.0)
        y1 = net(x)
    assert seen == [expected, expected]
    assert not torch.allclose(y0, y1)


@pytest.mark.parametrize("unet_star, expected", [(False, (256, [32, 32])), (True, (256, [64, 64]))])
def test_paper_table3_map_before_up4(unet_star, expected):
    """512 x 512 inputs: U-Net* sees 256 channels at 64 x 64 before up4 (the paper's Table 3 setting)."""
    net = SRBUNet(2, 3, 2, block="srb_aom", unet_star=unet_star, spatial_size=512)
    block = net.srb_before_up4
    assert (block.in_channels, block.f.spatial_size) == expected


def test_parameter_counts():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    basic = count(BasicUNet(2, 3, 2, features=PAPER_UNET_FEATURES))
    assert basic == 1_948_434
    assert abs(basic - 1_943_000) / 1_943_000 < 0.01
    assert count(SRBUNet(2, 3, 2, srb_positions=())) == basic
    srb_f = count(SRBUNet(2, 3, 2, srb_positions=ALL_UP, block="srb_fft", spatial_size=512))
    srb_a = count(SRBUNet(2, 3, 2, srb_positions=ALL_UP, block="srb_aom", spatial_size=512))
    print(f"U-Net {basic:,} (paper 1.943M); + 4 SRB_F {srb_f:,} (paper 2.076M); + 4 SRB_A {srb_a:,}")
    assert abs(srb_f - 2_076_000) / 2_076_000 < 0.05
    assert srb_a > srb_f > basic


# Tracing records shape checks as constants, and torch 2.13 marks TorchScript deprecated: both expected here.
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
@pytest.mark.parametrize("block", ["srb_fft", "srb_aom"])
@pytest.mark.parametrize("unet_star", [False, True])
def test_torchscript(block, unet_star):
    net = make({"spatial_dims": 2, "in_channels": 3, "out_channels": 2, "srb_positions": ("before_up4", "after_up1"),
                "block": block, "unet_star": unet_star, "spatial_size": 64}).eval()
    for b in (net.srb_before_up4, net.srb_after_up1):
        with torch.no_grad():
            b.alpha.fill_(0.5)  # let the blocks contribute, so their scripted code is compared too
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = net(x)
        torch.testing.assert_close(torch.jit.script(net)(x), expected, rtol=1e-5, atol=1e-5)
        traced = torch.jit.trace(net, x, check_trace=False)
        torch.testing.assert_close(traced(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs, match", BAD_ARGS)
def test_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SRBUNet(2, 3, 2, **kwargs)


# (spatial_dims, in_channels, out_channels, words the message must hold)
BAD_SIZES = [
    (2, 0, 2, r"in_channels must be a positive int, got 0 \(int\)"),
    (2, 3, 0, r"out_channels must be a positive int, got 0 \(int\)"),
    (2, 3.0, 2, r"in_channels must be a positive int, got 3.0 \(float\)"),
    ("2", 3, 2, r"spatial_dims must be 2 or 3 \(an int\), got '2' \(str\)"),
    (4, 3, 2, r"spatial_dims must be 2 or 3 \(an int\), got 4 \(int\)"),
]


@pytest.mark.parametrize("spatial_dims, in_channels, out_channels, match", BAD_SIZES)
def test_bad_dims_and_channels(spatial_dims, in_channels, out_channels, match):
    with pytest.raises(ValueError, match=match):
        SRBUNet(spatial_dims, in_channels, out_channels)
