from __future__ import annotations

import copy

import pytest
import torch
from monai.networks.nets import BasicUNet, DenseNet121, UNet
from torch import nn

from monai_srb.blocks.spectral_residual import SpectralResidualBlock
from monai_srb.nets.insertion import InsertedBlock, insert_blocks
from monai_srb.nets.srb_unet import SRBUNet

NETWORKS = {
    "unet_2d": (lambda: UNet(2, 1, 2, channels=(8, 16, 32), strides=(2, 2)), (2, 1, 32, 32)),
    "unet_3d": (lambda: UNet(3, 1, 2, channels=(4, 8, 16), strides=(2, 2), num_res_units=1), (1, 1, 16, 16, 16)),
    "basic_unet_2d": (lambda: BasicUNet(2, 1, 2, features=(4, 4, 8, 8, 16, 4)), (2, 1, 32, 32)),
    "basic_unet_3d": (lambda: BasicUNet(3, 1, 2, features=(4, 4, 8, 8, 16, 4)), (1, 1, 32, 32, 32)),
    "densenet_2d": (lambda: DenseNet121(2, 1, 3), (1, 1, 64, 64)),
}


class TupleOut(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, x


class Toy(nn.Module):
    """Points no block fits: a tuple output, a shared activation seeing two shapes, an unused layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pair = TupleOut()
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(4, 8, 1)
        self.unused = nn.Conv2d(8, 8, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.pair(self.conv(x))[0])
        return self.flatten(self.pool(self.act(self.expand(x))))


def build(name: str, seed: int = 0) -> tuple[nn.Module, tuple[int, ...]]:
    factory, shape = NETWORKS[name]
    torch.manual_seed(seed)
    return factory(), shape


def perturb(network: nn.Module) -> None:
    """Move every inserted block off its identity initialisation: fill its all-zero parameters (alpha, gamma)."""
    for module in network.modules():
        if isinstance(module, InsertedBlock):
            for param in module.block.parameters():
                if not param.any():
                    nn.init.constant_(param, 0.5)


# (network, points, position, block, block_args, example_input as a tensor rather than a shape, train mode)
IDENTITY_CASES = [
    ("unet_2d", None, "after", "srb_fft", {}, False, False),
    ("unet_2d", None, "before", "srb_fft", {}, True, True),
    ("unet_2d", ["model.1", "model.1.submodule.1"], "before", "srb_dct", {}, False, False),
    ("unet_2d", "model.1.submodule.0", "after", "srb_aom", {}, False, True),
    ("unet_2d", ["model.1", "model.1.submodule.1"], "after", "nonlocal", {"sub_sample": True}, False, False),
    ("unet_2d", "model.1.submodule.1", "after", "double_attention", {}, False, True),
    ("unet_2d", "model.1.submodule.2", "after", "srb_fft", {"reduction": 4, "spatial_size": None}, False, False),
    ("unet_3d", None, "after", "srb_fft", {}, False, False),
    ("unet_3d", "model.1.submodule.1", "before", "srb_aom", {}, True, False),
    ("basic_unet_2d", None, "after", "srb_fft", {}, False, True),
    # upcat_4(x, x_e): "before" sees x, the skip input x_e passes through *args.
    ("basic_unet_2d", "upcat_4", "before", "nonlocal", {}, False, False),
    ("basic_unet_3d", ["down_2", "down_4"], "after", "srb_fft", {}, False, False),
    ("basic_unet_3d", None, "before", "srb_dct", {}, False, False),
    ("densenet_2d", ["features.denseblock3", "features.denseblock4"], "after", "srb_fft", {}, False, False),
]


@pytest.mark.parametrize("name, points, position, block, block_args, as_tensor, train", IDENTITY_CASES)
def test_identity_at_init_then_not(name, points, position, block, block_args, as_tensor, train):
    network, shape = build(name)
    network.train(train)
    original = copy.deepcopy(network)
    example = torch.zeros(shape) if as_tensor else shape
    returned = insert_blocks(network, points, block, position, example_input=example, **block_args)
    assert returned is network
    assert network.training == train and all(m.training == train for m in network.modules())

    n_points = 1 if points is None or isinstance(points, str) else len(points)
    assert sum(isinstance(m, InsertedBlock) for m in network.modules()) == n_points

    torch.manual_seed(1)
    x = torch.randn(shape)
    with torch.no_grad():
        expected, actual = original(x), network(x)
        assert actual.shape == expected.shape
        torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)
        perturb(network)
        assert not torch.allclose(network(x), expected, atol=1e-4)


# (network, position, the point points=None picks, the shape of the map its block sees)
DEEPEST_CASES = [
    ("unet_2d", "after", "model.1.submodule.1", (2, 48, 8, 8)),
    ("unet_2d", "before", "model.1.submodule.2", (2, 48, 8, 8)),
    ("basic_unet_2d", "after", "down_4", (2, 16, 2, 2)),
    ("basic_unet_3d", "after", "down_4", (1, 16, 2, 2, 2)),
    ("densenet_2d", "after", "features", (1, 1024, 2, 2)),
    ("densenet_2d", "before", "features.norm5", (1, 1024, 2, 2)),
]


@pytest.mark.parametrize("name, position, point, seen", DEEPEST_CASES)
def test_deepest_point(name, position, point, seen):
    network, shape = build(name)
    insert_blocks(network, None, "srb_fft", position, example_input=shape)
    wrapper = network.get_submodule(point)
    assert isinstance(wrapper, InsertedBlock) and wrapper.position == position and wrapper.point == point
    assert isinstance(wrapper.block, SpectralResidualBlock)
    assert wrapper.block.in_channels == seen[1]
    # The spectral ReLU is built on the probed grid, so the block takes the map without resampling.
    assert list(wrapper.block.phi.spectral_relu.spatial_size) == list(seen[2:])


def test_state_dict_keys_and_mode():
    network, shape = build("unet_2d")
    keys = set(network.state_dict())
    network.eval()
    insert_blocks(network, "model.0", "srb_fft", "after", example_input=shape)
    new_keys = set(network.state_dict())
    assert {k.replace("model.0.module.", "model.0.") for k in new_keys if not k.startswith("model.0.block.")} == keys
    assert "model.0.block.alpha" in new_keys
    assert not network.training and not network.get_submodule("model.0.block").training


def test_dtype_and_empty_points():
    network, shape = build("unet_2d")
    network.double()
    original = copy.deepcopy(network)
    assert insert_blocks(network, [], example_input=None) is network
    assert not any(isinstance(m, InsertedBlock) for m in network.modules())
    insert_blocks(network, None, "nonlocal", "after", example_input=shape)
    assert all(p.dtype == torch.float64 for p in network.get_submodule("model.1.submodule.1.block").parameters())
    x = torch.randn(shape, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(network(x), original(x))


# torch 2.13 marks TorchScript deprecated; the tracer warns that the blocks' shape checks are frozen into the trace.
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
def test_script_and_trace():
    network, shape = build("unet_2d")
    network.eval()
    insert_blocks(network, ["model.0", "model.1.submodule.1"], "srb_fft", "after", example_input=shape)
    perturb(network)
    x = torch.randn(shape)
    with torch.no_grad():
        expected = network(x)
        torch.testing.assert_close(torch.jit.trace(network, x)(x), expected)
        torch.testing.assert_close(torch.jit.script(copy.deepcopy(network))(x), expected)


# (insert_blocks kwargs on top of the network and a default example_input, words the message must hold)
BAD_ARGS = [
    ({"points": "model.9"}, "not a submodule"),
    ({"points": ""}, "not a submodule"),
    ({"points": ["model.0", "model.0"]}, "more than once"),
    ({"position": "middle"}, r"Unsupported option 'middle'.*'before'"),
    ({"block": "srb_wavelet"}, r"Unsupported option 'srb_wavelet'"),
    ({"example_input": None}, "example_input"),
    ({"example_input": (1, 1, 32)}, "example_input"),
    ({"example_input": (1, 1, 32.0, 32)}, "example_input"),
    ({"points": "pair", "position": "after", "network": "toy"}, "not a tensor"),
    ({"points": "act", "network": "toy"}, "different shapes"),
    ({"points": "unused", "network": "toy"}, "not called"),
    ({"points": "flatten", "position": "after", "network": "toy"}, "spatial dims"),
]


@pytest.mark.parametrize("kwargs, match", BAD_ARGS)
def test_bad_args(kwargs, match):
    kwargs = dict(kwargs)
    if kwargs.pop("network", "unet_2d") == "toy":
        network: nn.Module = Toy()
        shape: tuple[int, ...] = (1, 1, 8, 8)
    else:
        network, shape = build("unet_2d")
    kwargs.setdefault("example_input", shape)
    with pytest.raises(ValueError, match=match):
        insert_blocks(network, **kwargs)


def _inserted(network: nn.Module) -> list[str]:
    return [n for n, m in network.named_modules() if isinstance(m, InsertedBlock)]


@pytest.mark.parametrize("name, position", [("unet_2d", "after"), ("unet_2d", "before"), ("basic_unet_2d", "after")])
def test_points_none_twice_is_refused(name, position):
    network, shape = build(name)
    insert_blocks(network, None, "srb_fft", position, example_input=shape)
    first, keys = _inserted(network), set(network.state_dict())
    with pytest.raises(ValueError, match=rf"already holds blocks inserted at \['{first[0]}'\].*name the points"):
        insert_blocks(network, None, "srb_fft", position, example_input=shape)
    assert _inserted(network) == first and set(network.state_dict()) == keys


# (network builder, a point inside a block, example_input)
INSIDE_BLOCK_CASES = [
    (lambda: insert_blocks(build("unet_2d")[0], "model.1.submodule.2", example_input=(1, 1, 32, 32)),
     "model.1.submodule.2.block.phi", (1, 1, 32, 32)),
    (lambda: insert_blocks(build("unet_2d")[0], "model.1.submodule.2", "nonlocal", example_input=(1, 1, 32, 32)),
     "model.1.submodule.2.block.theta", (1, 1, 32, 32)),
    (lambda: SRBUNet(2, 1, 2, features=(4, 4, 8, 8, 16, 4)), "srb_before_up4.f", (1, 1, 32, 32)),
    (lambda: SRBUNet(2, 1, 2, features=(4, 4, 8, 8, 16, 4)), ["down_4", "srb_before_up4.phi.norm_reduce"],
     (1, 1, 32, 32)),
]


@pytest.mark.parametrize("factory, points, shape", INSIDE_BLOCK_CASES)
def test_points_inside_a_block_are_refused(factory, points, shape):
    network = factory()
    with pytest.raises(ValueError, match="inside another block"):
        insert_blocks(network, points, example_input=shape)


@pytest.mark.parametrize("position, point", [("after", "down_4"), ("before", "down_4.convs.conv_0.adn")])
def test_deepest_point_skips_existing_blocks(position, point):
    # SRBUNet's own SRB sees the deepest map, and the spectra inside it are smaller still.
    network = SRBUNet(2, 1, 2, features=(4, 4, 8, 8, 16, 4))
    insert_blocks(network, None, "srb_fft", position, example_input=(1, 1, 32, 32))
    assert _inserted(network) == [point]


def test_no_deepest_point():
    network = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match="no submodule"):
        insert_blocks(network, None, position="after", example_input=(1, 2, 8, 8))


def test_wrapper_errors():
    with pytest.raises(ValueError, match=r"Unsupported option 'inside'"):
        InsertedBlock(nn.Identity(), nn.Identity(), "inside")
    wrapper = InsertedBlock(TupleOut(), nn.Identity(), "after", point="pair")
    with pytest.raises(ValueError, match="'pair'"):
        wrapper(torch.zeros(1, 1, 4, 4))


def test_usable_from_a_bundle_config():
    from monai.bundle import ConfigParser

    config = {
        "imports": ["$import monai_srb"],
        "base": {
            "_target_": "UNet", "spatial_dims": 2, "in_channels": 1, "out_channels": 2, "channels": [4, 8, 16],
            "strides": [2, 2],
        },
        "network": {
            "_target_": "insert_blocks", "network": "@base", "block": "srb_fft", "example_input": [1, 1, 32, 32]
        },
        "unet": {
            "_target_": "SRBUNet", "spatial_dims": 2, "in_channels": 1, "out_channels": 2,
            "features": [4, 4, 8, 8, 16, 4],
        },
    }
    parser = ConfigParser(config)
    net = parser.get_parsed_content("network")
    assert any(type(m).__name__ == "SpectralResidualBlock" for m in net.modules())
    assert type(parser.get_parsed_content("unet")).__name__ == "SRBUNet"
