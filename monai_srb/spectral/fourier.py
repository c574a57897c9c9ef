"""The SRB_F local-to-global transform ``f``: an orthonormal real FFT over the spatial axes."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from monai_srb.spectral.matrix_transform import mode_product
from monai_srb.spectral.sizes import check_spatial_dims

__all__ = ["FourierTransform", "dft_matrices"]

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


def _mirror_weight(n: int, length: int, like: torch.Tensor) -> torch.Tensor:
    """
    Per frequency of the one-sided axis of an ``rfft`` of a length-``n`` signal (``length`` entries): 2
    where the frequency stands for itself and its mirror image, 1 for DC and, for even ``n``, Nyquist.
    """
    weight = torch.full([length], 2.0, dtype=like.dtype, device=like.device)
    weight[0] = 1.0
    if n % 2 == 0:
        weight[-1] = 1.0
    return weight


def _scaled_copy(parts: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """
    ``parts * scale`` (or a copy of ``parts``) as a contiguous tensor in one pass: ``torch.mul(..., out=)``
    writes the new layout directly. Autograd does not take ``out=``, so a double backward takes the
    out-of-place path.
    """
    if torch.is_grad_enabled():
        return (parts if scale is None else parts * scale).contiguous()
    out = torch.empty(parts.shape, dtype=parts.dtype, device=parts.device)
    if scale is None:
        return out.copy_(parts)
    return torch.mul(parts, scale, out=out)


def _interleave(spectrum: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Complex (B, C, *grid) to the real interleaved layout (B, 2C, *grid), times ``scale`` (per last-axis frequency)."""
    parts = torch.view_as_real(spectrum).movedim(-1, 2)  # (B, C, 2, *grid), a strided view
    return _scaled_copy(parts, scale).view([parts.shape[0], -1] + list(parts.shape[3:]))


def _deinterleave(z: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """The interleaved layout (B, 2C, *grid) back to a contiguous complex (B, C, *grid), times ``scale``."""
    parts = z.reshape([z.shape[0], -1, 2] + list(z.shape[2:])).movedim(2, -1)  # (B, C, *grid, 2)
    return torch.view_as_complex(_scaled_copy(parts, None if scale is None else scale.unsqueeze(-1)))


class _InterleavedRFFTN(torch.autograd.Function):
    """
    ``rfftn(x, norm="ortho")`` in the interleaved layout, with a backward of one half-spectrum ``irfftn``:
    the adjoint of the one-sided orthonormal rfft is ``irfftn`` of the gradient with the frequencies that
    stand for a mirrored pair halved. PyTorch's own r2c backward zero-pads the gradient to the full
    spectrum and runs a full complex FFT, and the layout change and the halving would be two more passes;
    here they are one.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, dims: list[int]) -> torch.Tensor:
        ctx.dims, ctx.size = dims, [x.shape[d] for d in dims]
        return _interleave(torch.fft.rfftn(x, dim=dims, norm="ortho"))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        half = _mirror_weight(ctx.size[-1], grad.shape[-1], grad).reciprocal_()
        spectrum = _deinterleave(grad, half)
        return torch.fft.irfftn(spectrum, s=ctx.size, dim=ctx.dims, norm="ortho"), None


class _InterleavedIRFFTN(torch.autograd.Function):
    """
    ``irfftn(z, norm="ortho")`` of an interleaved spectrum. Its backward is ``rfftn`` of the gradient with
    the mirrored-pair frequencies doubled (what PyTorch's c2r backward computes), written straight into
    the interleaved layout in the pass that doubles them.
    """

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, size: list[int], dims: list[int]) -> torch.Tensor:
        ctx.dims, ctx.size = dims, size
        return torch.fft.irfftn(_deinterleave(z), s=size, dim=dims, norm="ortho")

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        spectrum = torch.fft.rfftn(grad, dim=ctx.dims, norm="ortho")
        return _interleave(spectrum, _mirror_weight(ctx.size[-1], spectrum.shape[-1], grad)), None, None


@torch.jit.unused
def _rfftn_interleaved(x: torch.Tensor, dims: list[int]) -> torch.Tensor:
    return _InterleavedRFFTN.apply(x, dims)


@torch.jit.unused
def _irfftn_interleaved(z: torch.Tensor, size: list[int], dims: list[int]) -> torch.Tensor:
    return _InterleavedIRFFTN.apply(z, size, dims)


class FourierTransform(nn.Module):
    """
    Orthonormal real FFT of every channel over all spatial axes (the paper's SRB_F transform).

    The half spectrum of ``torch.fft.rfftn(norm="ortho")`` is returned as a real tensor whose real and
    imaginary parts are *interleaved per channel*: channel ``2c`` holds Re(f(X_c)) and ``2c + 1`` holds
    Im(f(X_c)), as in FFC/LaMa's ``FourierUnit``. With that layout a 1x1 convolution with ``groups``
    dividing ``in_channels`` keeps the real and imaginary part of a channel in the same group, so a
    grouped convolution can express complex products. The blocked layout (all real parts, then all
    imaginary parts) would put them in different groups as soon as ``groups`` is even. The layout is
    also a plain view of ``torch.view_as_real``'s trailing pair axis, which lets a consumer work on it
    without materialising the interleaving.

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
    onesided: bool = True

    def __init__(self, spatial_dims: int, impl: str = "fft") -> None:
        super().__init__()
        spatial_dims = check_spatial_dims(spatial_dims)
        if impl not in FFT_IMPLS:
            raise ValueError(f"impl must be one of {FFT_IMPLS}, got {impl!r}.")
        self.spatial_dims = spatial_dims
        self.impl = impl

    def spectral_size(self, spatial_size: list[int]) -> list[int]:
        """Size of the spectral grid for an input of ``spatial_size``: the last axis is one-sided."""
        return list(spatial_size[:-1]) + [spatial_size[-1] // 2 + 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: in shape (batch, channels, spatial_1[, spatial_2, spatial_3]).

        Returns:
            real tensor in shape (batch, 2 * channels, spatial_1[, ...], spatial_last // 2 + 1).
        """
        if x.dtype != torch.float64:
            x = x.float()
        if self.impl == "matmul":
            re, im = self._rfftn_matmul(x)
            z = torch.stack([re, im], dim=2)  # (B, C, 2, *grid)
        else:
            dims = list(range(2, x.ndim))
            if not (torch.jit.is_scripting() or torch.jit.is_tracing()):  # custom autograd: neither scriptable nor traceable
                return _rfftn_interleaved(x, dims)
            z = torch.view_as_real(torch.fft.rfftn(x, dim=dims, norm="ortho")).movedim(-1, 2)  # (B, C, 2, *grid)
        return z.reshape([z.shape[0], -1] + list(z.shape[3:]))

    def inverse(self, z: torch.Tensor, spatial_size: list[int]) -> torch.Tensor:
        """
        Args:
            z: interleaved spectrum in shape (batch, 2 * channels, *spectral_size(spatial_size)).
            spatial_size: the spatial size of the signal to recover (the last axis is ambiguous from
                the half spectrum alone).

        Returns:
            real tensor in shape (batch, channels, *spatial_size).
        """
        if z.dtype != torch.float64:
            z = z.float()
        if self.impl == "matmul":
            parts = z.reshape([z.shape[0], -1, 2] + list(z.shape[2:])).unbind(2)
            return self._irfftn_matmul(parts[0], parts[1], spatial_size)
        dims = list(range(2, z.ndim))
        if not (torch.jit.is_scripting() or torch.jit.is_tracing()):
            return _irfftn_interleaved(z, spatial_size, dims)
        z = z.reshape([z.shape[0], -1, 2] + list(z.shape[2:])).movedim(2, -1).contiguous()
        return torch.fft.irfftn(torch.view_as_complex(z), s=spatial_size, dim=dims, norm="ortho")

    def _rfftn_matmul(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Real and imaginary parts of ``rfftn(x, norm="ortho")`` by DFT matrix products."""
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
        return re, im

    def _irfftn_matmul(self, re: torch.Tensor, im: torch.Tensor, spatial_size: list[int]) -> torch.Tensor:
        """``irfftn(re + i im, s=spatial_size, norm="ortho")`` by DFT matrix products."""
        last = re.ndim - 1
        for axis in range(2, last):
            cos, sin = dft_matrices(spatial_size[axis - 2], False, re.device)
            cos, sin = cos.to(re.dtype), sin.to(re.dtype)
            # (C + iS)(re + i im) = (C re - S im) + i (C im + S re)
            re, im = (
                mode_product(re, cos, axis) - mode_product(im, sin, axis),
                mode_product(im, cos, axis) + mode_product(re, sin, axis),
            )
        n = spatial_size[-1]
        cos, sin = dft_matrices(n, True, re.device)
        # Hermitian symmetry: the frequencies 1 .. ceil(n / 2) - 1 stand for their mirror images too,
        # and, as irfft does, the imaginary parts of DC and Nyquist are ignored (their sine rows are 0).
        weight = torch.full([cos.shape[0], 1], 2.0, dtype=cos.dtype, device=cos.device)
        weight[0] = 1.0
        if n % 2 == 0:
            weight[-1] = 1.0
        return torch.matmul(re, (weight * cos).to(re.dtype)) - torch.matmul(im, (weight * sin).to(re.dtype))
