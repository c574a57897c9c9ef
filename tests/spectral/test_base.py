"""The SpectralTransform interface (spectral/base.py) across every transform: each table runs all of them.

Inverse of forward, unitarity of the matrix transforms, the frequency grid against the spectrum's shape,
constructor checks and holds_fixed_size_transform. What one transform does alone is tested in
test_fourier.py, test_cosine.py and test_adaptive_orthogonal.py.
"""

from __future__ import annotations

import pytest
import torch

from monai_srb.spectral import (
    AdaptiveOrthogonalTransform,
    CosineTransform,
    FourierTransform,
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


@pytest.mark.parametrize("shape", SHAPES)
def test_grid_is_the_spectrum_shape(shape):
    for f in _transforms(shape):
        grid = f.frequency_grid().indices(list(shape[2:]))
        assert [len(axis) for axis in grid] == list(f(torch.randn(shape)).shape[2:])


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


@pytest.mark.parametrize(
    "block,expected", [("srb_aom", True), ("srb_fft", False), ("srb_dct", False), ("srb_identity", False)]
)
def test_holds_fixed_size_transform_finds_the_one_size_transforms(block, expected):
    from torch import nn

    from monai_srb.blocks import make_block
    from monai_srb.spectral import holds_fixed_size_transform

    network = nn.Sequential(nn.Conv2d(3, 8, 1), make_block(block, 2, 8, spatial_size=[16, 16]))
    assert holds_fixed_size_transform(network) is expected
