from __future__ import annotations

import pytest
import torch
from monai.engines import SupervisedTrainer

from monai_srb.blocks import SpectralResidualBlock
from monai_srb.handlers import OrthogonalRetractionHandler


def _trainer(net: torch.nn.Module) -> SupervisedTrainer:
    """Two epochs of three MSE steps on random 4-channel 8x8 batches."""
    torch.manual_seed(0)
    data = [{"image": torch.randn(2, 4, 8, 8), "label": torch.randn(2, 4, 8, 8)} for _ in range(3)]
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    return SupervisedTrainer(torch.device("cpu"), 2, data, net, optimizer, torch.nn.MSELoss(), amp=False)


@pytest.mark.parametrize("transform,expected", [("aom", 2 * 6), ("fft", 0)])
def test_retraction_runs_every_iteration(transform, expected):
    net = SpectralResidualBlock(2, 4, transform=transform, spatial_size=8)
    trainer = _trainer(net)
    handler = OrthogonalRetractionHandler(net)
    handler.attach(trainer)
    trainer.run()
    assert handler.retracted == expected
    if transform == "aom":
        for m in net.f.orthogonal_matrices:
            assert (m.t() @ m - torch.eye(8)).abs().max() < 1e-5


def test_retraction_rejects_bad_every():
    with pytest.raises(ValueError, match="every"):
        OrthogonalRetractionHandler(torch.nn.Identity(), every=0)
