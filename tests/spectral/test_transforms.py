from __future__ import annotations

import math

import pytest
import torch

from monai_srb.spectral import (
    AdaptiveOrthogonalTransform,
    CosineTransform,
    FourierTransform,
    dct_matrix,
    orthogonal_qr,
    retract_orthogonal_,
)

SHAPES = [(2, 3, 9, 7), (1, 2, 8, 8), (2, 2, 5, 6, 7), (1, 1, 4, 3, 5)]


def _transforms(shape: tuple[int, ...]) -> list[torch.nn.Module]:
    size = list(shape[2:])
    return [
        FourierTransform(len(size)),
        AdaptiveOrthogonalTransform(size),
        AdaptiveOrthogonalTransform(size, init="dct"),
        AdaptiveOrthogonalTransform(size, mode="parametrization"),
        CosineTransform(size),
    ]


CASES = [(shape, i) for shape in SHAPES for i in range(5)]


@pytest.mark.parametrize("shape,which", CASES)
def test_inverse_of_forward_is_identity(shape, which):
    torch.manual_seed(0)
    f = _transforms(shape)[which]
    x = torch.randn(shape)
    z = f(x)
    expected = f.spectral_size(list(shape[2:]))
    assert list(z.shape) == [shape[0], shape[1] * f.channel_factor] + expected
    torch.testing.assert_close(f.inverse(z, list(shape[2:])), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape,which", [c for c in CASES if c[1] != 0])
def test_matrix_transforms_are_unitary(shape, which):
    torch.manual_seed(0)
    f = _transforms(shape)[which]
    x = torch.randn(shape)
    torch.testing.assert_close(f(x).norm(), x.norm(), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("size", [(6, 6), (5, 7), (3, 4, 5)])
def test_fourier_matches_torch_rfftn_interleaved(size):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size)
    z = FourierTransform(len(size))(x)
    ref = torch.fft.rfftn(x, dim=list(range(2, x.ndim)), norm="ortho")
    torch.testing.assert_close(z[:, 0::2], ref.real)
    torch.testing.assert_close(z[:, 1::2], ref.imag)


@pytest.mark.parametrize("shape", SHAPES + [(1, 1, 1, 1), (1, 1, 2, 1)])
def test_fourier_matmul_impl_matches_fft(shape):
    torch.manual_seed(0)
    fft, matmul = FourierTransform(len(shape) - 2), FourierTransform(len(shape) - 2, impl="matmul")
    x = torch.randn(shape)
    torch.testing.assert_close(matmul(x), fft(x), atol=1e-5, rtol=0)
    # also on spectra that are not the transform of a real signal (DC / Nyquist imaginary parts set)
    z = torch.randn_like(fft(x))
    torch.testing.assert_close(matmul.inverse(z, list(shape[2:])), fft.inverse(z, list(shape[2:])), atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape", [(1, 2, 6, 5), (2, 1, 5, 8), (1, 1, 3, 4, 5), (1, 1, 4, 3, 6), (1, 1, 1, 2)])
def test_fourier_backward_is_the_adjoint(shape):
    # the fast backward (half-spectrum irfftn) against autograd's own r2c backward, and gradcheck
    torch.manual_seed(0)
    f = FourierTransform(len(shape) - 2)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    g = torch.randn_like(f(x))
    (fast,) = torch.autograd.grad(f(x), x, g)
    ref = torch.view_as_real(torch.fft.rfftn(x, dim=list(range(2, x.ndim)), norm="ortho")).movedim(-1, 2)
    (slow,) = torch.autograd.grad(ref.reshape(g.shape), x, g)
    torch.testing.assert_close(fast, slow)
    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


@pytest.mark.parametrize("shape", [(1, 2, 6, 5), (2, 1, 5, 8), (1, 1, 3, 4, 5), (1, 1, 4, 3, 6), (1, 1, 1, 2)])
def test_fourier_inverse_backward_matches_autograd(shape):
    # the inverse's fused backward (rfftn, doubling and interleaving in one pass) against autograd's irfftn
    torch.manual_seed(0)
    f, size = FourierTransform(len(shape) - 2), list(shape[2:])
    z = torch.randn_like(f(torch.randn(shape, dtype=torch.float64))).requires_grad_()
    g = torch.randn(shape, dtype=torch.float64)
    (fast,) = torch.autograd.grad(f.inverse(z, size), z, g)
    dims = list(range(2, len(shape)))
    parts = z.reshape([shape[0], -1, 2] + list(z.shape[2:])).movedim(2, -1).contiguous()
    ref = torch.fft.irfftn(torch.view_as_complex(parts), s=size, dim=dims, norm="ortho")
    (slow,) = torch.autograd.grad(ref, z, g)
    torch.testing.assert_close(fast, slow)
    assert torch.autograd.gradcheck(lambda t: f.inverse(t, size), (z,))
    assert torch.autograd.gradgradcheck(lambda t: f.inverse(t, size), (z,))


@pytest.mark.parametrize("size", [(6, 5), (7, 8), (3, 4, 5), (1, 2)])
def test_fourier_grid_is_the_rfftn_frequencies(size):
    # index k of an axis of length n stands for the normalised frequency k / n
    indices = FourierTransform(len(size)).frequency_grid().indices(list(size))
    expected = [torch.fft.fftfreq(n) for n in size[:-1]] + [torch.fft.rfftfreq(size[-1])]
    for axis, n, freq in zip(indices, size, expected):
        torch.testing.assert_close(torch.tensor(axis, dtype=torch.float64) / n, freq.double())


@pytest.mark.parametrize("shape", SHAPES)
def test_grid_is_the_spectrum_shape(shape):
    for f in _transforms(shape):
        grid = f.frequency_grid().indices(list(shape[2:]))
        assert [len(axis) for axis in grid] == list(f(torch.randn(shape)).shape[2:])


def test_fourier_runs_in_float32_for_half_input():
    x = torch.randn(1, 2, 6, 5).bfloat16()
    z = FourierTransform(2)(x)
    assert z.dtype == torch.float32


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_dct_matrix_is_dct_ii(n):
    d = dct_matrix(n, torch.float64)
    x = torch.randn(n, dtype=torch.float64)
    ref = torch.tensor(
        [
            sum(x[i].item() * math.cos(math.pi * (2 * i + 1) * k / (2 * n)) for i in range(n))
            * math.sqrt((1 if k == 0 else 2) / n)
            for k in range(n)
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(d @ x, ref)
    torch.testing.assert_close(d @ d.t(), torch.eye(n, dtype=torch.float64))


def test_cosine_transform_takes_other_sizes():
    f = CosineTransform((8, 8))
    x = torch.randn(1, 2, 5, 9)
    torch.testing.assert_close(f.inverse(f(x), [5, 9]), x, atol=1e-5, rtol=0)


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


@pytest.mark.parametrize(
    "build,message",
    [
        (lambda: FourierTransform(1), "spatial_dims"),
        (lambda: FourierTransform(2, impl="dft"), r"(?s)'dft'.*Available options"),
        (lambda: AdaptiveOrthogonalTransform((4,)), "spatial_size"),
        (lambda: AdaptiveOrthogonalTransform((4, 0)), "spatial_size"),
        (lambda: AdaptiveOrthogonalTransform((4, 4), init="eye"), r"(?s)'eye'.*Available options"),
        (lambda: AdaptiveOrthogonalTransform((4, 4), mode="cayley"), r"(?s)'cayley'.*Available options"),
        (lambda: CosineTransform((4, 4, 4, 4)), "spatial_size"),
    ],
)
def test_bad_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_aom_rejects_other_sizes_naming_both():
    f = AdaptiveOrthogonalTransform((8, 8))
    with pytest.raises(ValueError, match=r"\[8, 8\].*\[8, 9\]"):
        f(torch.randn(1, 1, 8, 9))


@pytest.mark.parametrize(
    "block,expected", [("srb_aom", True), ("srb_fft", False), ("srb_dct", False), ("srb_identity", False)]
)
def test_holds_fixed_size_transform_finds_the_one_size_transforms(block, expected):
    from torch import nn

    from monai_srb.blocks import make_block
    from monai_srb.spectral import holds_fixed_size_transform

    network = nn.Sequential(nn.Conv2d(3, 8, 1), make_block(block, 2, 8, spatial_size=[16, 16]))
    assert holds_fixed_size_transform(network) is expected
