"""init_srbs and param_groups: the SRB knobs grids set through the bundles (monai_srb.nets.srb_parameters)."""

from __future__ import annotations

import pytest
import torch

from monai_srb.blocks import SpectralResidualBlock
from monai_srb.nets import SRBUNet, init_srbs, param_groups

TINY = {"features": (4, 4, 4, 4, 4, 4), "srb_positions": ["before_up4", "after_up1"]}

# (block, alpha, weight): the values every SRB gets; None leaves the block's own.
INIT_CASES = [("srb_fft", 0.1, None), ("srb_fft", None, 0.5), ("srb_dct", 0.25, 2.0), ("srb_aom", -0.1, None)]

# (spectral_lr_mult, spectral_weight_decay, the SRB group's expected lr and weight decay at lr 1e-3)
GROUP_CASES = [(10.0, 0.0, 1e-2, 0.0), (1.0, None, 1e-3, None), (0.5, 1e-4, 5e-4, 1e-4)]


def _net(block: str = "srb_fft") -> SRBUNet:
    torch.manual_seed(0)
    return SRBUNet(2, 3, 2, block=block, spatial_size=32, **TINY)


def _srbs(net: torch.nn.Module) -> list[SpectralResidualBlock]:
    return [m for m in net.modules() if isinstance(m, SpectralResidualBlock)]


@pytest.mark.parametrize("block, alpha, weight", INIT_CASES)
def test_init_srbs_sets_alpha_and_w_of_every_block_and_nothing_else(block, alpha, weight):
    net = _net(block)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert init_srbs(net, alpha=alpha, weight=weight) is net
    srbs = _srbs(net)
    assert len(srbs) == 2
    for srb in srbs:
        if alpha is not None:
            assert torch.equal(srb.alpha, torch.full_like(srb.alpha, alpha))
        if weight is not None:
            w = srb.phi.spectral_relu.weight
            assert torch.equal(w, torch.full_like(w, weight))
    changed = {k for k, v in net.state_dict().items() if not torch.equal(v, before[k])}
    expected = {k for k in before if (alpha is not None and k.endswith(".alpha"))
                or (weight is not None and k.endswith("spectral_relu.weight"))}
    assert changed == expected


@pytest.mark.parametrize("mult, decay, lr, expected_decay", GROUP_CASES)
def test_param_groups_give_the_srbs_their_own_learning_rate(mult, decay, lr, expected_decay):
    net = _net()
    groups = param_groups(net, 1e-3, spectral_lr_mult=mult, spectral_weight_decay=decay)
    assert len(groups) == 2 and "lr" not in groups[0] and groups[1]["lr"] == pytest.approx(lr)
    assert groups[1].get("weight_decay") == expected_decay
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    assert {id(p) for p in groups[1]["params"]} == {id(p) for srb in _srbs(net) for p in srb.parameters()}
    torch.optim.AdamW(groups, lr=1e-3)  # a valid optimiser definition


def test_a_network_without_srbs_gives_one_group():
    net = SRBUNet(2, 3, 2, features=(4, 4, 4, 4, 4, 4), srb_positions=())
    (group,) = param_groups(net, 1e-3, spectral_lr_mult=10.0)
    assert len(group["params"]) == len(list(net.parameters())) and "lr" not in group


def test_the_old_module_warns_and_holds_the_same_functions():
    import importlib
    import sys

    from monai_srb.nets import srb_parameters

    sys.modules.pop("monai_srb.nets.tuning", None)
    with pytest.warns(DeprecationWarning, match=r"monai_srb.nets.tuning is deprecated"):
        tuning = importlib.import_module("monai_srb.nets.tuning")
    assert tuning.init_srbs is srb_parameters.init_srbs and tuning.param_groups is srb_parameters.param_groups
