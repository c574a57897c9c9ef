"""AdaptiveOrthogonalTransform, orthogonal_qr and retract_orthogonal_ (spectral/adaptive_orthogonal.py)."""

from __future__ import annotations

import pytest
import torch

from monai_srb.spectral import (
    AdaptiveOrthogonalTransform,
    orthogonal_qr,
    retract_orthogonal_,
)


def test_orthogonal_qr_is_sign_fixed_and_idempotent():
    torch.manual_seed(0)
    q = orthogonal_qr(torch.randn(6, 6))
    torch.testing.assert_close(q.t() @ q, torch.eye(6), atol=1e-6, rtol=0)
    torch.testing.assert_close(orthogonal_qr(q), q, atol=1e-6, rtol=0)
    # continuity: a small perturbation moves the retraction a small amount
    assert (orthogonal_qr(q + 1e-4 * torch.randn(6, 6)) - q).abs().max() < 1e-3


@pytest.mark.parametrize("size", [(7, 5), (4, 5, 6)])
def test_aom_stays_orthogonal_over_training_with_retraction(size):
    torch.manual_seed(0)
    f = AdaptiveOrthogonalTransform(size)
    opt = torch.optim.Adam(f.parameters(), lr=1e-2)
    target = torch.randn(2, 3, *size)
    for _ in range(20):
        opt.zero_grad()
        loss = (f(torch.randn(2, 3, *size)) - target).pow(2).mean()
        loss.backward()
        opt.step()
        drift = max((m.t() @ m - torch.eye(m.shape[0])).abs().max().item() for m in f.orthogonal_matrices)
        assert drift > 1e-5  # the optimiser step does leave the orthogonal group ...
        assert retract_orthogonal_(f) == len(size)
        for m in f.orthogonal_matrices:  # ... and the retraction brings it back
            assert (m.t() @ m - torch.eye(m.shape[0])).abs().max() < 1e-5


def test_retract_skips_parametrized_and_frozen():
    net = torch.nn.Sequential(
        AdaptiveOrthogonalTransform((4, 4)),
        AdaptiveOrthogonalTransform((4, 4), mode="parametrization"),
        AdaptiveOrthogonalTransform((4, 4), learnable=False),
    )
    assert retract_orthogonal_(net) == 2
    assert retract_orthogonal_(torch.nn.Conv2d(1, 1, 1)) == 0


def test_parametrization_mode_is_orthogonal_after_steps():
    torch.manual_seed(0)
    f = AdaptiveOrthogonalTransform((5, 6), mode="parametrization")
    opt = torch.optim.SGD(f.parameters(), lr=0.5)
    for _ in range(5):
        opt.zero_grad()
        f(torch.randn(1, 2, 5, 6)).sum().backward()
        opt.step()
    for m in f.orthogonal_matrices:
        assert (m.t() @ m - torch.eye(m.shape[0])).abs().max() < 1e-5


def test_aom_rejects_other_sizes_naming_both():
    f = AdaptiveOrthogonalTransform((8, 8))
    with pytest.raises(ValueError, match=r"\[8, 8\].*\[8, 9\]"):
        f(torch.randn(1, 1, 8, 9))
