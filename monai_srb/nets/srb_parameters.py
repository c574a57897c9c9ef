"""
The parameters of a network's Spectral Residual Blocks, as the SRB investigation sets them and the bundles do not
expose as arguments: the initial ``alpha`` and ``W`` of every SRB, and an optimiser group of their own (a
learning rate and weight decay for the spectral branch).
A bundle or grid reaches them as components, e.g.
``"srb_network": {"_target_": "monai_srb.nets.init_srbs", "network": "@network_def", "alpha": 0.1}`` with
``"network": "$@srb_network.to(@device)"``, and
``"optimizer#params": {"_target_": "monai_srb.nets.param_groups", "network": "@network", "lr": "@lr", ...}``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from monai_srb.blocks import SpectralResidualBlock

__all__ = ["init_srbs", "param_groups"]


def init_srbs(network: nn.Module, alpha: float | None = None, weight: float | None = None) -> nn.Module:
    """
    Set ``alpha`` and/or the spectral ReLU's ``W`` of every :class:`SpectralResidualBlock` in ``network``, in place.

    Args:
        network: any module; the SRBs among its submodules are changed.
        alpha: the value every SRB's ``alpha`` is filled with; ``None`` leaves it.
        weight: the value every spectral ReLU's ``W`` is filled with; ``None`` leaves it.

    Returns:
        ``network`` itself.
    """
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, SpectralResidualBlock):
                if alpha is not None:
                    module.alpha.fill_(alpha)
                if weight is not None:
                    module.phi.spectral_relu.weight.fill_(weight)
    return network


def param_groups(
    network: nn.Module, lr: float, spectral_lr_mult: float = 1.0, spectral_weight_decay: float | None = None
) -> list[dict[str, Any]]:
    """
    Two optimiser parameter groups: everything outside the SRBs, and the SRBs' own parameters (``alpha``,
    ``phi``, an AOM's matrices). An empty group is left out.

    Args:
        network: the network whose parameters are split.
        lr: the optimiser's learning rate; the first group takes it from the optimiser.
        spectral_lr_mult: the SRB group's learning rate is ``lr * spectral_lr_mult``.
        spectral_weight_decay: the SRB group's own weight decay; ``None``: the optimiser's (``0``: the decay no
            longer pulls ``alpha`` back to 0).

    Returns:
        the groups, for ``torch.optim.Optimizer(params=...)``.
    """
    spectral = {id(p) for m in network.modules() if isinstance(m, SpectralResidualBlock) for p in m.parameters()}
    groups: list[dict[str, Any]] = [
        {"params": [p for p in network.parameters() if id(p) not in spectral]},
        {"params": [p for p in network.parameters() if id(p) in spectral], "lr": lr * spectral_lr_mult},
    ]
    if spectral_weight_decay is not None:
        groups[1]["weight_decay"] = spectral_weight_decay
    return [g for g in groups if g["params"]]
