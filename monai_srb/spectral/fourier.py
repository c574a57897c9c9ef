"""The SRB_F local-to-global transform ``f``: an orthonormal real FFT over the spatial axes."""

from __future__ import annotations

import math

import torch
from monai.utils import look_up_option

from monai_srb.spectral._fft_autograd import irfftn_interleaved, mirror_weight, rfftn_interleaved
from monai_srb.spectral.base import FrequencyGrid, SpectralTransform
from monai_srb.spectral.matrix_transform import mode_product
from monai_srb.utils.sizes import check_spatial_dims

__all__ = ["FFT_IMPLS", "FourierGrid", "FourierTransform", "dft_matrices"]

FFT_IMPLS = ("fft", "matmul")


def dft_matrices(n: int, onesided: bool, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Cosine and sine parts of the orthonormal DFT matrix of length ``n``: ``F = (C - i S)``, with
    ``C[k, j] = cos(2 pi k j / n) / sqrt(n)`` and ``S[k, j] = sin(2 pi k j / n) / sqrt(n)``. With
    ``onesided`` only the ``n // 2 + 1`` non-negative frequencies (rows) of an ``rfft`` are kept.
    Built in float64 (the phase ``k j`` is reduced modulo ``n`` first) and returned in float32.
    """
    rows = n // 2 + 1 if onesided else n
    k = torch.arange(rows, dtype=torch.float64, device=device).unsqueeze(1)
    j = torch.arange(n, dtype=torch.float64, device=device).unsqueeze(0)
    phase = torch.remainder(k * j, n) * (2.0 * math.pi / n)
    scale = 1.0 / math.sqrt(n)
    return (torch.cos(phase) * scale).float(), (torch.sin(phase) * scale).float()


def _rfftn_matmul(x: torch.Tensor) -> torch.Tensor:
    """``rfftn(x, norm="ortho")`` in the interleaved layout, by DFT matrix products."""
    last = x.ndim - 1
    cos, sin = dft_matrices(x.shape[last], True, x.device)
    re = torch.matmul(x, cos.to(x.dtype).t())
    im = -torch.matmul(x, sin.to(x.dtype).t())
    for axis in range(2, last):
        cos, sin = dft_matrices(x.shape[axis], False, x.device)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        # (C - iS)(re + i im) = (C re + S im) + i (C im - S re)
        re, im = (
            mode_product(re, cos, axis) + mode_product(im, sin, axis),
            mode_product(im, cos, axis) - mode_product(re, sin, axis),
        )
    z = torch.stack([re, im], dim=2)  # (B, C, 2, *grid)
    return z.reshape([z.shape[0], -1] + list(z.shape[3:]))


def _irfftn_matmul(z: torch.Tensor, spatial_size: list[int]) -> torch.Tensor:
    """``irfftn(s=spatial_size, norm="ortho")`` of an interleaved half spectrum, by DFT matrix products."""
    parts = z.reshape([z.shape[0], -1, 2] + list(z.shape[2:])).unbind(2)
    re, im = parts[0], parts[1]
    last = re.ndim - 1
    for axis in range(2, last):
        cos, sin = dft_matrices(spatial_size[axis - 2], False, re.device)
        cos, sin = cos.to(re.dtype), sin.to(re.dtype)
        # (C + iS)(re + i im) = (C re - S im) + i (C im + S re)
        re, im = (
            mode_product(re, cos, axis) - mode_product(im, sin, axis),
            mode_product(im, cos, axis) + mode_product(re, sin, axis),
        )
    cos, sin = dft_matrices(spatial_size[-1], True, re.device)
    # Hermitian symmetry: the frequencies 1 .. ceil(n / 2) - 1 stand for their mirror images too,
    # and, as irfft does, the imaginary parts of DC and Nyquist are ignored (their sine rows are 0).
    weight = mirror_weight(spatial_size[-1], cos.shape[0], cos).unsqueeze(1)
    return torch.matmul(re, (weight * cos).to(re.dtype)) - torch.matmul(im, (weight * sin).to(re.dtype))


class FourierGrid(FrequencyGrid):
    """
    The frequencies of ``rfftn``'s half spectrum: FFT order ``(0, 1, ..., -2, -1)`` on every axis but the
    last, which holds the ``n // 2 + 1`` non-negative frequencies.
    """

    def indices(self, spatial_size: list[int]) -> list[list[int]]:
        last = len(spatial_size) - 1
        out: list[list[int]] = []
        for axis, n in enumerate(spatial_size):
            if axis == last:
                out.append([k for k in range(n // 2 + 1)])
            else:
                out.append([k if k < (n + 1) // 2 else k - n for k in range(n)])
        return out

    def index_tensor(self, spatial_size: list[int], axis: int, device: torch.device) -> torch.Tensor:
        n = spatial_size[axis]
        if axis == len(spatial_size) - 1:
            return torch.arange(n // 2 + 1, device=device)
        k = torch.arange(n, device=device)
        return torch.where(k < (n + 1) // 2, k, k - n)


class FourierTransform(SpectralTransform):
    """
    Orthonormal real FFT of every channel over all spatial axes (the paper's SRB_F transform).

    The half spectrum of ``torch.fft.rfftn(norm="ortho")`` is returned as a real tensor whose real and
    imaginary parts are *interleaved per channel*: channel ``2c`` holds Re(f(X_c)) and ``2c + 1`` holds
    Im(f(X_c)), as in FFC/LaMa's ``FourierUnit``. With that layout a 1x1 convolution with ``groups``
    dividing ``in_channels`` keeps the real and imaginary part of a channel in the same group, so a
    grouped convolution can express complex products. The blocked layout (all real parts, then all
    imaginary parts) would put them in different groups as soon as ``groups`` is even.

    The FFT always runs in float32 (or float64 for float64 input): cuFFT's half-precision transforms
    only accept power-of-two sizes, and the spectrum of a large image overflows fp16 easily.

    ``impl="matmul"`` computes the same transform with dense cosine/sine DFT matrices per axis (built
    for the input's size). It is slower for large sizes but uses only matmuls, which every exporter
    takes: ONNX has no usable real-FFT export from PyTorch.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        impl: ``"fft"`` (``torch.fft``) or ``"matmul"`` (DFT matrices, for export).

    Raises:
        ValueError: when ``spatial_dims`` is not 2 or 3 or ``impl`` is unknown.
    """

    channel_factor: int = 2

    def __init__(self, spatial_dims: int, impl: str = "fft") -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        self.impl: str = look_up_option(impl, FFT_IMPLS)

    def frequency_grid(self) -> FrequencyGrid:
        return FourierGrid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: in shape (batch, channels, spatial_1[, spatial_2, spatial_3]).

        Returns:
            real tensor in shape (batch, 2 * channels, spatial_1[, ...], spatial_last // 2 + 1).
        """
        x = x if x.dtype == torch.float64 else x.float()
        if self.impl == "matmul":
            return _rfftn_matmul(x)
        return rfftn_interleaved(x, list(range(2, x.ndim)))

    def inverse(self, z: torch.Tensor, spatial_size: list[int]) -> torch.Tensor:
        """
        Args:
            z: interleaved spectrum in shape (batch, 2 * channels, *spectral_size(spatial_size)).
            spatial_size: the spatial size of the signal to recover (the last axis is ambiguous from
                the half spectrum alone).

        Returns:
            real tensor in shape (batch, channels, *spatial_size).
        """
        z = z if z.dtype == torch.float64 else z.float()
        if self.impl == "matmul":
            return _irfftn_matmul(z, spatial_size)
        return irfftn_interleaved(z, spatial_size, list(range(2, z.ndim)))
