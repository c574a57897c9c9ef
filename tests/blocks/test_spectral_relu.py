from __future__ import annotations

import pytest
import torch

from monai_srb.blocks import SpectralReLU
from monai_srb.spectral import FrequencyGrid
from monai_srb.spectral.fourier import FourierGrid


def _grid(onesided: bool) -> FrequencyGrid:
    return FourierGrid() if onesided else FrequencyGrid()


CASES = [
    # (spatial_size, onesided (the rFFT grid, else basis indices), input spatial size, expected grid)
    ((8, 8), True, (8, 8), (8, 5)),
    ((9, 7), True, (9, 7), (9, 4)),
    ((8, 8), True, (12, 11), (12, 6)),
    ((6, 6), False, (6, 6), (6, 6)),
    ((6, 6), False, (9, 5), (9, 5)),
    ((4, 5, 6), True, (4, 5, 6), (4, 5, 4)),
    ((4, 5, 6), True, (6, 7, 9), (6, 7, 5)),
    ((4, 5, 6), False, (3, 5, 8), (3, 5, 8)),
]


@pytest.mark.parametrize("size,onesided,in_size,grid", CASES)
def test_shape_and_init(size, onesided, in_size, grid):
    torch.manual_seed(0)
    layer = SpectralReLU(size, _grid(onesided))
    z = torch.randn(2, 3, *grid)
    out = layer(z, list(in_size))
    assert out.shape == z.shape
    # W = 1, B = 0 at init, on any grid: a plain ReLU
    torch.testing.assert_close(out, torch.relu(z))


@pytest.mark.parametrize("size,onesided,in_size,grid", [c for c in CASES if c[0] != c[2]])
def test_other_size_trains_the_stored_tables(size, onesided, in_size, grid):
    torch.manual_seed(0)
    layer = SpectralReLU(size, _grid(onesided))
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()
    layer(torch.randn(2, 3, *grid), list(in_size)).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert layer.bias.grad is not None and layer.bias.grad.abs().sum() > 0


def _fft_freq_table(size: list[int], onesided: bool) -> torch.Tensor:
    """|normalised frequency| summed over axes, on the layout the layer stores."""
    axes = []
    for i, n in enumerate(size):
        f = torch.fft.rfftfreq(n) if onesided and i == len(size) - 1 else torch.fft.fftfreq(n)
        axes.append(f.abs() if onesided else torch.arange(n) / n)
    grids = torch.meshgrid(*axes, indexing="ij")
    return sum(grids)


@pytest.mark.parametrize(
    "src,dst,onesided", [((8, 8), (16, 16), True), ((8, 6), (16, 12), False), ((4, 4, 8), (8, 8, 16), True)]
)
def test_resampling_matches_normalised_frequency(src, dst, onesided):
    # On a grid that doubles, every target frequency that lies on the source grid keeps its value and
    # the highest positive and negative FFT frequencies are not blended together.
    layer = SpectralReLU(src, _grid(onesided))
    with torch.no_grad():
        layer.weight.copy_(_fft_freq_table(list(src), onesided))
    w, _ = layer.resampled(list(dst))
    expected = _fft_freq_table(list(dst), onesided)
    index = tuple(slice(0, None, 2) for _ in dst)
    torch.testing.assert_close(w[index], expected[index])


class _ReversedGrid(FrequencyGrid):
    """Basis indices stored in reverse order: the layer must follow the grid's order, not assume one."""

    def indices(self, spatial_size: list[int]) -> list[list[int]]:
        out: list[list[int]] = []
        for n in spatial_size:
            out.append([n - 1 - k for k in range(n)])
        return out


def test_resampling_follows_the_grid_order():
    torch.manual_seed(0)
    plain, reversed_ = SpectralReLU((6, 4)), SpectralReLU((6, 4), _ReversedGrid())
    with torch.no_grad():
        plain.weight.normal_()
        reversed_.weight.copy_(plain.weight.flip(0, 1))
    w, _ = reversed_.resampled([9, 7])
    torch.testing.assert_close(w, plain.resampled([9, 7])[0].flip(0, 1))
    torch.testing.assert_close(torch.jit.script(reversed_).resampled([9, 7])[0], w)


class _GappedGrid(FrequencyGrid):
    def indices(self, spatial_size: list[int]) -> list[list[int]]:
        return [[2 * k for k in range(n)] for n in spatial_size]


def test_grid_with_gaps_is_rejected():
    with pytest.raises(ValueError, match=r"consecutive integers, got \[0, 2, 4, 6\]"):
        SpectralReLU((4, 4), _GappedGrid())


def test_same_size_returns_the_parameters():
    layer = SpectralReLU((6, 6))
    w, b = layer.resampled([6, 6])
    assert w is layer.weight and b is layer.bias


@pytest.mark.parametrize("size", [(8,), (0, 3), (1, 2, 3, 4)])
def test_bad_size(size):
    with pytest.raises(ValueError, match="spatial_size"):
        SpectralReLU(size)


def test_wrong_dims_at_forward():
    with pytest.raises(ValueError, match="spatial dims"):
        SpectralReLU((8, 8)).resampled([4, 4, 4])
