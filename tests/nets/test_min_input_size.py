from __future__ import annotations

import re

import pytest
import torch

from monai_srb.nets import SRBDenseNet121, SRBResNet50, SRBSPMNet, SRBUNet
from monai_srb.nets.srb_unet import unet_norm

SMALL = (4, 4, 8, 8, 8, 4)  # U-Net widths: the minimum depends on depth and norm, not on widths
BATCH = {"norm": unet_norm("batch")}


def _below(name: str, minimum: int) -> str:
    return rf"{name} needs an input of at least {minimum} per spatial dim \(.*\)"


def _deepest(minimum: int) -> str:
    return rf"SRBUNet with instance norm needs a deepest map \(the input floored by {minimum} per axis\) of at least 2 "


# (id, network factory, min_input_size, an input it refuses, words the message must hold, the smallest it takes)
CASES = [
    ("unet_2d", lambda: SRBUNet(2, 3, 2), 16, (1, 3, 8, 8), _below("SRBUNet", 16), (1, 3, 32, 16)),
    # 16 x 16 passes the max-poolings, but the 1 x 1 deepest map has one position for instance norm's statistics
    ("unet_2d_deepest", lambda: SRBUNet(2, 3, 2), 16, (1, 3, 16, 16), _deepest(16), (1, 3, 16, 32)),
    ("unet_2d_one_axis", lambda: SRBUNet(2, 3, 2, features=SMALL), 16, (2, 3, 64, 15), _below("SRBUNet", 16),
     (2, 3, 64, 16)),
    ("unet_2d_batch_norm", lambda: SRBUNet(2, 3, 2, unet_args=BATCH), 16, (1, 3, 8, 8), _below("SRBUNet", 16),
     (1, 3, 16, 16)),
    # the U-Net's norm is batch norm, but the SRB before up4 (on the deepest map) normalises per image
    ("unet_2d_block_instance_norm", lambda: SRBUNet(2, 3, 2, features=SMALL, unet_args=BATCH, norm="instance"), 16,
     (1, 3, 16, 16), _deepest(16), (1, 3, 32, 16)),
    ("unet_star", lambda: SRBUNet(2, 3, 2, features=SMALL, unet_star=True), 8, (1, 3, 8, 8), _deepest(8),
     (1, 3, 16, 8)),
    ("unet_3d", lambda: SRBUNet(3, 1, 2, features=SMALL), 16, (1, 1, 16, 16, 16), _deepest(16), (1, 1, 32, 32, 16)),
    ("resnet50", lambda: SRBResNet50(2, 1, 3), 1, (1, 1, 0, 8), _below("SRBResNet50", 1), (1, 1, 1, 1)),
    ("densenet121", lambda: SRBDenseNet121(2, 1, 3), 29, (1, 1, 28, 28), _below("SRBDenseNet121", 29),
     (1, 1, 29, 29)),
    ("spm", lambda: SRBSPMNet(2, 1, 2), 1, (1, 1, 8, 0), _below("SRBSPMNet", 1), (1, 1, 1, 1)),
]


@pytest.mark.parametrize("build, minimum, small, match, smallest", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_min_input_size_is_stated_and_checked(build, minimum, small, match, smallest):
    torch.manual_seed(0)
    net = build().eval()
    assert net.min_input_size == minimum
    with torch.no_grad():
        with pytest.raises(ValueError, match=match + r".*got shape " + re.escape(str(list(small)))):
            net(torch.randn(small))
        assert net(torch.randn(smallest)).shape[0] == smallest[0]  # the smallest input runs


@pytest.mark.parametrize("norm, positions", [("instance", 2), ("batch", 1)])
def test_unet_min_deepest_positions(norm, positions):
    assert SRBUNet(2, 1, 2, features=SMALL, unet_args={"norm": unet_norm(norm)}).min_deepest_positions == positions


def test_min_input_size_under_torchscript():
    net = torch.jit.script(SRBUNet(2, 1, 2, features=SMALL).eval())
    with pytest.raises(torch.jit.Error, match=r"SRBUNet needs an input of at least 16 per spatial dim"):
        net(torch.randn(1, 1, 8, 8))
    with pytest.raises(torch.jit.Error, match=_deepest(16)):
        net(torch.randn(1, 1, 16, 16))
