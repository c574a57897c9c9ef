"""
The orthonormal real FFT and its inverse in the interleaved real/imaginary layout, with fused backward passes.

:func:`rfftn_interleaved` and :func:`irfftn_interleaved` take the fused autograd Functions in eager PyTorch and
``torch.fft`` plus a layout change under TorchScript and tracing, which take neither custom Function.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["irfftn_interleaved", "mirror_weight", "rfftn_interleaved"]


def mirror_weight(n: int, length: int, like: torch.Tensor) -> torch.Tensor:
    """
    Per frequency of the one-sided axis of an ``rfft`` of a length-``n`` signal (``length`` entries): 2
    where the frequency stands for itself and its mirror image, 1 for DC and, for even ``n``, Nyquist.
    In ``like``'s dtype and on its device.
    """
    # Arithmetic rather than ``if n % 2 == 0``: torch.compile with dynamic shapes then keeps one graph for every n.
    k = torch.arange(length, device=like.device)
    return 2.0 - (k == 0).to(like.dtype) - (2 * k == n).to(like.dtype)


def _scaled_copy(parts: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """
    ``parts * scale`` (or a copy of ``parts``) as a contiguous tensor in one pass: ``torch.mul(..., out=)``
    writes the new layout directly. Autograd does not take ``out=``, so a double backward takes the
    out-of-place path, and so does ``torch.compile``: functionalisation turns ``out=`` into an out-of-place
    ``mul`` whose strides are ``parts``' own, which the interleaved view cannot take (inductor fuses the copy
    into its kernel anyway).
    """
    if torch.is_grad_enabled() or torch.compiler.is_compiling():
        return (parts if scale is None else parts * scale).contiguous()
    out = torch.empty(parts.shape, dtype=parts.dtype, device=parts.device)
    if scale is None:
        return out.copy_(parts)
    return torch.mul(parts, scale, out=out)


def _interleave(spectrum: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Complex (B, C, *grid) to the real interleaved layout (B, 2C, *grid), times ``scale`` (per last-axis entry)."""
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
        half = mirror_weight(ctx.size[-1], grad.shape[-1], grad).reciprocal_()
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
        return _interleave(spectrum, mirror_weight(ctx.size[-1], spectrum.shape[-1], grad)), None, None


@torch.jit.unused
def _fused_rfftn(x: torch.Tensor, dims: list[int]) -> torch.Tensor:
    return _InterleavedRFFTN.apply(x, dims)


@torch.jit.unused
def _fused_irfftn(z: torch.Tensor, size: list[int], dims: list[int]) -> torch.Tensor:
    return _InterleavedIRFFTN.apply(z, size, dims)


def rfftn_interleaved(x: torch.Tensor, dims: list[int]) -> torch.Tensor:
    """
    ``rfftn(x, dim=dims, norm="ortho")`` with real and imaginary parts interleaved per channel.

    Args:
        x: real tensor in shape (batch, channels, *spatial), ``dims`` its spatial axes.

    Returns:
        real tensor in shape (batch, 2 * channels, *spatial[:-1], spatial[-1] // 2 + 1).
    """
    if not (torch.jit.is_scripting() or torch.jit.is_tracing()):
        return _fused_rfftn(x, dims)
    z = torch.view_as_real(torch.fft.rfftn(x, dim=dims, norm="ortho")).movedim(-1, 2)  # (B, C, 2, *grid)
    return z.reshape([z.shape[0], -1] + list(z.shape[3:]))


def irfftn_interleaved(z: torch.Tensor, size: list[int], dims: list[int]) -> torch.Tensor:
    """
    ``irfftn(s=size, dim=dims, norm="ortho")`` of an interleaved half spectrum.

    Args:
        z: real tensor in shape (batch, 2 * channels, *size[:-1], size[-1] // 2 + 1).
        size: the spatial size of the signal to recover (the half spectrum leaves the last one ambiguous).
        dims: the spatial axes.

    Returns:
        real tensor in shape (batch, channels, *size).
    """
    if not (torch.jit.is_scripting() or torch.jit.is_tracing()):
        return _fused_irfftn(z, size, dims)
    z = z.reshape([z.shape[0], -1, 2] + list(z.shape[2:])).movedim(2, -1).contiguous()
    return torch.fft.irfftn(torch.view_as_complex(z), s=size, dim=dims, norm="ortho")
