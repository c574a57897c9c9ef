"""
Knobs the SRB investigation turns that the bundles do not expose as arguments: the initial ``alpha`` and
``W`` of every Spectral Residual Block, and a learning rate (and weight decay) of its own for the spectral
branch. Grids reach them as bundle components (``workflows/`` is on ``sys.path`` when
``run_experiments.py`` runs), e.g.
``"srb_network": {"_target_": "srb_tuning.init_srbs", "network": "@network_def", "alpha": 0.1}`` with
``"network": "$@srb_network.to(@device)"``, and
``"optimizer#params": {"_target_": "srb_tuning.param_groups", "network": "@network", "lr": "@lr", ...}``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from monai_srb.blocks import SpectralResidualBlock

__all__ = ["init_srbs", "param_groups"]


def init_srbs(network: nn.Module, alpha: float | None = None, weight: float | None = None) -> nn.Module:
    """Set ``alpha`` and/or the spectral ReLU's ``W`` of every SRB in ``network``; returns ``network``."""
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
    Two optimiser groups: everything outside the SRBs at ``lr``, the SRBs' parameters (``alpha``, ``phi``,
    an AOM's matrices) at ``lr * spectral_lr_mult`` and, when given, their own weight decay (``0``: the
    decay no longer pulls ``alpha`` back to 0).
    """
    spectral = {id(p) for m in network.modules() if isinstance(m, SpectralResidualBlock) for p in m.parameters()}
    groups: list[dict[str, Any]] = [
        {"params": [p for p in network.parameters() if id(p) not in spectral]},
        {"params": [p for p in network.parameters() if id(p) in spectral], "lr": lr * spectral_lr_mult},
    ]
    if spectral_weight_decay is not None:
        groups[1]["weight_decay"] = spectral_weight_decay
    return [g for g in groups if g["params"]]
