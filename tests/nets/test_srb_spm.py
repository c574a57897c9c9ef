from __future__ import annotations

import math

import pytest
import torch

from monai_srb.nets.srb_spm import OUTPUT_STRIDE, SRBSPMNet

# (constructor kwargs, input shape, expected output shape).
CASES = [
    ({"spatial_dims": 2, "in_channels": 3, "out_channels": 2, "spatial_size": 64}, (1, 3, 64, 64), (1, 2, 64, 64)),
    # Sizes not divisible by 8: the map is ceil(S / 8) and the logits are up-sampled back to S.
    ({"spatial_dims": 2, "in_channels": 3, "out_channels": 2}, (2, 3, 50, 70), (2, 2, 50, 70)),
    (
        {"spatial_dims": 2, "in_channels": 1, "out_channels": 4, "spatial_size": (64, 48), "block": "srb_aom"},
        (1, 1, 64, 48),
        (1, 4, 64, 48),
    ),
    (
        {"spatial_dims": 2, "in_channels": 3, "out_channels": 2, "block": "srb_dct", "spm_channels": 32,
         "spm_dilations": (6, 12)},
        (1, 3, 64, 64),
        (1, 2, 64, 64),
    ),
    (
        {"spatial_dims": 3, "in_channels": 1, "out_channels": 2, "spatial_size": 32, "spm_channels": 32},
        (1, 1, 32, 32, 32),
        (1, 2, 32, 32, 32),
    ),
]

BAD_ARGS = [
    ({"spatial_dims": 1, "in_channels": 3, "out_channels": 2}, "spatial_dims"),
    ({"spatial_dims": 2, "in_channels": 3, "out_channels": 2, "block": "srb_aom"}, "spatial_size"),
    ({"spatial_dims": 2, "in_channels": 3, "out_channels": 2, "spatial_size": (64, 0)}, "positive"),
    ({"spatial_dims": 2, "in_channels": 3, "out_channels": 2, "block": "fourier"}, r"Unsupported option 'fourier'"),
    ({"spatial_dims": "2", "in_channels": 3, "out_channels": 2}, r"spatial_dims .*got '2' \(str\)"),
    ({"spatial_dims": 2, "in_channels": 0, "out_channels": 2}, r"in_channels .*got 0 \(int\)"),
    (
        {"spatial_dims": 2, "in_channels": 3, "out_channels": 2, "spatial_size": 64.5},
        r"spatial_size .*got 64.5 \(float\)",
    ),
]


def make(kwargs: dict, **overrides) -> SRBSPMNet:
    torch.manual_seed(0)
    return SRBSPMNet(**{**kwargs, **overrides})


@pytest.mark.parametrize("kwargs, in_shape, out_shape", CASES)
def test_shape_and_output_stride(kwargs, in_shape, out_shape):
    net = make(kwargs).eval()
    seen = []
    net.backbone.layer4.register_forward_hook(lambda module, args, out: seen.append(tuple(out.shape)))
    with torch.no_grad():
        assert net(torch.randn(in_shape)).shape == out_shape
    expected = (in_shape[0], 2048, *(math.ceil(s / OUTPUT_STRIDE) for s in in_shape[2:]))
    assert seen == [expected]


@pytest.mark.parametrize("kwargs, in_shape, out_shape", CASES)
@pytest.mark.parametrize("train", [False, True])
def test_identity_at_init(kwargs, in_shape, out_shape, train):
    """A fresh SRB network computes what the plain SPM network computes with the same weights."""
    net = make(kwargs).train(train)
    plain = make(kwargs, srb=False).train(train)
    missing, unexpected = plain.load_state_dict(net.state_dict(), strict=False)
    assert not missing and all(k.startswith("srb.") for k in unexpected)
    x = torch.randn(in_shape)
    with torch.no_grad():
        torch.testing.assert_close(net(x), plain(x), rtol=0, atol=1e-6)
        net.srb.alpha.fill_(1.0)
        assert not torch.allclose(net(x), plain(x))


def test_parameter_counts():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    spm = count(SRBSPMNet(2, 3, 2, spatial_size=512, srb=False))
    srb_f = count(SRBSPMNet(2, 3, 2, spatial_size=512))
    print(f"SPM {spm:,} (paper 29.59M); SPM + SRB_F {srb_f:,} (paper 31.70M)")
    assert abs(spm - 29_590_000) / 29_590_000 < 0.10
    assert spm < srb_f < 31_700_000


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch 2.13 marks TorchScript deprecated
def test_torchscript():
    net = make(CASES[0][0]).eval()
    with torch.no_grad():
        net.srb.alpha.fill_(0.5)
        x = torch.randn(CASES[0][1])
        torch.testing.assert_close(torch.jit.script(net)(x), net(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs, match", BAD_ARGS)
def test_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SRBSPMNet(**kwargs)
