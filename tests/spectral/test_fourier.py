"""FourierTransform (spectral/fourier.py) and its fused FFT autograd (spectral/_fft_autograd.py)."""

from __future__ import annotations

import pytest
import torch

from monai_srb.spectral import FourierTransform


@pytest.mark.parametrize("size", [(6, 6), (5, 7), (3, 4, 5)])
def test_fourier_matches_torch_rfftn_interleaved(size):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size)
    z = FourierTransform(len(size))(x)
    ref = torch.fft.rfftn(x, dim=list(range(2, x.ndim)), norm="ortho")
    torch.testing.assert_close(z[:, 0::2], ref.real)
    torch.testing.assert_close(z[:, 1::2], ref.imag)


@pytest.mark.parametrize(
    "shape", [(2, 3, 9, 7), (1, 2, 8, 8), (2, 2, 5, 6, 7), (1, 1, 4, 3, 5), (1, 1, 1, 1), (1, 1, 2, 1)]
)
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


def test_fourier_runs_in_float32_for_half_input():
    x = torch.randn(1, 2, 6, 5).bfloat16()
    z = FourierTransform(2)(x)
    assert z.dtype == torch.float32
