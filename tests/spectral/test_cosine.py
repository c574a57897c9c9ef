"""CosineTransform and dct_matrix (spectral/cosine.py)."""

from __future__ import annotations

import math

import pytest
import torch

from monai_srb.spectral import (
    CosineTransform,
    dct_matrix,
)


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
