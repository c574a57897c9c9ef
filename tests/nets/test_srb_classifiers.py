from __future__ import annotations

import copy

import pytest
import torch
from monai.networks.nets import DenseNet121, resnet50
from monai.visualize import CAM, GradCAM
from torch import nn

from monai_srb.nets.insertion import InsertedBlock
from monai_srb.nets.srb_classifiers import SRBDenseNet121, SRBResNet50


def plain_resnet50(spatial_dims: int, in_channels: int, out_channels: int) -> nn.Module:
    return resnet50(spatial_dims=spatial_dims, n_input_channels=in_channels, num_classes=out_channels, pretrained=False)


PLAIN = {SRBResNet50: plain_resnet50, SRBDenseNet121: DenseNet121}
# The documented CAM target (the map after the last block) and the classifier layer CAM weighs it with.
CAM_LAYERS = {SRBResNet50: ("layer4", "fc"), SRBDenseNet121: ("class_layers.relu", "class_layers.out")}

# (class, spatial_dims, in_channels, out_channels, extra kwargs, input shape, stages expected to hold a block)
CASES = [
    (SRBResNet50, 2, 1, 14, {}, (2, 1, 64, 64), ["layer3", "layer4"]),
    (SRBResNet50, 3, 1, 3, {}, (1, 1, 32, 32, 32), ["layer3", "layer4"]),
    (SRBResNet50, 2, 3, 5, {"srb_after": "layer4", "block": "srb_aom", "spatial_size": 64}, (2, 3, 64, 64), ["layer4"]),
    (SRBDenseNet121, 2, 1, 14, {}, (2, 1, 64, 64), ["features.denseblock3", "features.denseblock4"]),
    (SRBDenseNet121, 3, 1, 3, {}, (1, 1, 32, 32, 32), ["features.denseblock3", "features.denseblock4"]),
    (
        SRBDenseNet121,
        2,
        1,
        2,
        {"srb_after": "features.denseblock4", "block": "double_attention", "spatial_size": (64, 48)},
        (1, 1, 64, 48),
        ["features.denseblock4"],
    ),
]


@pytest.mark.parametrize("cls, spatial_dims, in_channels, out_channels, kwargs, in_shape, stages", CASES)
def test_shape_and_identity_at_init(cls, spatial_dims, in_channels, out_channels, kwargs, in_shape, stages):
    # Same seed, same backbone construction: the plain model has the classifier's backbone weights.
    torch.manual_seed(0)
    plain = PLAIN[cls](spatial_dims, in_channels, out_channels).eval()
    torch.manual_seed(0)
    net = cls(spatial_dims, in_channels, out_channels, **kwargs).eval()
    assert isinstance(net, type(plain))
    assert sorted(n for n, m in net.named_modules() if isinstance(m, InsertedBlock)) == sorted(stages)

    x = torch.randn(in_shape)
    with torch.no_grad():
        expected, actual = plain(x), net(x)
    assert actual.shape == (in_shape[0], out_channels)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cls", [SRBResNet50, SRBDenseNet121])
@pytest.mark.parametrize("cam_cls", [GradCAM, CAM])
def test_cam(cls, cam_cls):
    torch.manual_seed(0)
    net = cls(spatial_dims=2, in_channels=1, out_channels=3)
    target, fc = CAM_LAYERS[cls]
    kwargs = {"fc_layers": fc} if cam_cls is CAM else {}
    x = torch.randn(1, 1, 64, 64)
    cam_map = cam_cls(nn_module=net, target_layers=target, **kwargs)(x)
    assert cam_map.shape == (1, 1, 64, 64)
    assert torch.isfinite(cam_map).all()


# torch 2.13 marks TorchScript deprecated; the tracer warns that the blocks' shape checks are frozen into the trace.
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
@pytest.mark.parametrize("cls", [SRBResNet50, SRBDenseNet121])
def test_trace_and_script(cls):
    torch.manual_seed(0)
    net = cls(spatial_dims=2, in_channels=1, out_channels=3).eval()
    for module in net.modules():
        if isinstance(module, InsertedBlock):
            nn.init.constant_(module.block.alpha, 0.5)  # let the blocks contribute
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        expected = net(x)
        # check_trace re-runs the model to compare; the assertion below does that once.
        torch.testing.assert_close(torch.jit.trace(net, x, check_trace=False)(x), expected)
        torch.testing.assert_close(torch.jit.script(copy.deepcopy(net))(x), expected)


# (class, kwargs, words the message must hold)
BAD_ARGS = [
    (SRBResNet50, {"block": "srb_aom"}, "spatial_size"),
    (SRBResNet50, {"block": "wavelet"}, r"Unsupported option 'wavelet'"),
    (SRBDenseNet121, {"spatial_size": (64, 0)}, "spatial_size"),
    (SRBDenseNet121, {"spatial_size": (64, 64, 64)}, r"spatial_size .*\(3 entries\)"),
    (SRBDenseNet121, {"srb_after": ["features.denseblock5"]}, "not a submodule"),
    (SRBDenseNet121, {"spatial_dims": 4}, r"spatial_dims must be 2 or 3 \(an int\), got 4 \(int\)"),
    (SRBDenseNet121, {"spatial_dims": "2"}, r"spatial_dims must be 2 or 3 \(an int\), got '2' \(str\)"),
    (SRBResNet50, {"spatial_dims": 4}, r"spatial_dims must be 2 or 3 \(an int\), got 4 \(int\)"),
    (SRBResNet50, {"spatial_dims": "2"}, r"spatial_dims must be 2 or 3 \(an int\), got '2' \(str\)"),
    (SRBDenseNet121, {"in_channels": 0}, r"in_channels must be a positive int, got 0"),
    (SRBResNet50, {"out_channels": 0}, r"out_channels must be a positive int, got 0"),
    (SRBDenseNet121, {"spatial_size": 16},
     r"spatial_size \(the input image size\) must be at least 29 per spatial dim \(DenseNet-121 .*got 16\."),
    (SRBDenseNet121, {"spatial_size": (64, 28)}, r"at least 29 .*got \(64, 28\)"),
    (SRBDenseNet121, {"spatial_size": 16.7}, r"spatial_size .*got 16.7 \(float\)"),
]


@pytest.mark.parametrize("cls, kwargs, match", BAD_ARGS)
def test_bad_args(cls, kwargs, match):
    kwargs = {"spatial_dims": 2, "in_channels": 1, "out_channels": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


# (spatial dims, input shape): below DenseNet-121's 29 along some axis
SMALL_INPUTS = [(2, (1, 1, 28, 28)), (2, (2, 1, 64, 28)), (3, (1, 1, 28, 32, 32))]


@pytest.mark.parametrize("spatial_dims, shape", SMALL_INPUTS)
def test_densenet_input_below_minimum(spatial_dims, shape):
    net = SRBDenseNet121(spatial_dims, 1, 3).eval()
    assert net.min_input_size == 29
    message = rf"at least 29 per spatial dim .*got shape \[{', '.join(map(str, shape))}\]"
    with pytest.raises(ValueError, match=message):
        net(torch.randn(shape))
    with pytest.raises((ValueError, torch.jit.Error), match=message):
        torch.jit.script(copy.deepcopy(net))(torch.randn(shape))
    with torch.no_grad():  # 29 is enough
        assert net(torch.randn(shape[:2] + (29,) * spatial_dims)).shape == (shape[0], 3)
