"""The Spectral Residual Block (SRB), Li et al., ICME 2020: ``Y = X + alpha * f^-1(phi(f(X)))``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers.utils import get_norm_layer
from torch import nn

from monai_srb.blocks._block_parts import check_block_input
from monai_srb.blocks.pointwise import GroupedPointwiseConv
from monai_srb.blocks.spectral_relu import SpectralReLU
from monai_srb.spectral.base import FrequencyGrid
from monai_srb.spectral.registry import TransformSpec, create_transform, transform_class
from monai_srb.utils.sizes import check_positive_int, check_spatial_dims, check_spatial_size

__all__ = ["SpectralResidualBlock", "SpectralSubNetwork", "DEFAULT_SPECTRAL_SIZE"]

# Grid on which W and B of the spectral ReLU are stored when SRB_F / SRB_DCT get no ``spatial_size``;
# every input is served by resampling them to its own grid.
DEFAULT_SPECTRAL_SIZE = 32


class SpectralSubNetwork(nn.Module):
    """
    The spectral sub-network ``phi`` (the paper's Eqn. 2-6): a bottleneck applied to the spectrum,
    1x1 group conv (C' -> K') -> norm -> spectral ReLU -> 1x1 group conv (K' -> C') -> norm.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        channels: spectral channel count C' (``2 * in_channels`` for the interleaved FFT spectrum).
        hidden_channels: bottleneck width K'.
        groups: groups of both 1x1 convolutions; divides ``channels`` and ``hidden_channels``.
        spatial_size: spatial size whose spectral grid the spectral ReLU's ``W``, ``B`` are built for.
        grid: where the spectrum's entries sit in frequency (the transform's ``frequency_grid()``).
        norm: norm layer name or (name, args) for MONAI's ``get_norm_layer``.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        hidden_channels: int,
        groups: int,
        spatial_size: Sequence[int],
        grid: FrequencyGrid,
        norm: str | tuple = "batch",
    ) -> None:
        super().__init__()
        # The convs carry no bias: a norm layer follows each of them.
        self.conv_reduce = GroupedPointwiseConv(spatial_dims, channels, hidden_channels, groups)
        self.norm_reduce = get_norm_layer(norm, spatial_dims, hidden_channels)
        self.spectral_relu = SpectralReLU(spatial_size, grid)
        self.conv_expand = GroupedPointwiseConv(spatial_dims, hidden_channels, channels, groups)
        self.norm_expand = get_norm_layer(norm, spatial_dims, channels)

    def forward(self, z: torch.Tensor, spatial_size: list[int]) -> torch.Tensor:
        """
        Args:
            z: spectrum in shape (batch, channels, *grid).
            spatial_size: spatial size of the signal ``z`` is the spectrum of.
        """
        z = self.norm_reduce(self.conv_reduce(z))
        z = self.spectral_relu(z, spatial_size)
        return self.norm_expand(self.conv_expand(z))


class SpectralResidualBlock(nn.Module):
    """
    Spectral Residual Block (SRB): ``Y = X + alpha * f^-1(phi(f(X)))`` where ``f`` is a unitary
    transform applied to every channel, so every output location depends on every input location,
    ``phi`` is :class:`SpectralSubNetwork`, and ``alpha`` is a learnable scalar initialised to 0 so that
    the block is the identity when inserted into a network.

    Transforms (``monai_srb.spectral.registry.TRANSFORMS``): ``"fft"`` (SRB_F,
    :class:`~monai_srb.spectral.FourierTransform`, orthonormal real FFT, any input size), ``"aom"`` (SRB_A,
    :class:`~monai_srb.spectral.AdaptiveOrthogonalTransform`, learned orthogonal matrices, needs
    ``spatial_size`` and takes only that size; retract them with :func:`monai_srb.spectral.retract_orthogonal_`
    after each optimiser step), ``"dct"`` (SRB_DCT, :class:`~monai_srb.spectral.CosineTransform`, orthonormal
    DCT-II, any input size), ``"identity"`` (SRB_I, :class:`~monai_srb.spectral.IdentityTransform`, the ablation
    control: SRB_F's ``phi`` and parameter count without any mixing across positions).

    The spectral branch (transform, ``phi``, inverse) runs in float32 with autocast switched off, whatever
    the input's or the autocast dtype (cuFFT's half-precision transforms only take power-of-two sizes, the
    CPU FFT none at all, and half-precision AOM/DCT matmuls and 1x1 convs on a spectrum lose accuracy, see
    ``workflows/amp_check.py``), and in float64 after ``block.double()``. A half-precision block
    (``block.half()``, ``block.bfloat16()``, a network's ``.half()``) keeps its float16 / bfloat16 parameters
    and buffers, and its forward uses float32 copies of them (``torch.func.functional_call``, gradients
    reaching the half-precision parameters, batch norm's running statistics written back in training); the
    float32 branch is how GFNet runs its FFT, and without the copies CPU batch norm refuses float32 input
    with half-precision weights (``mixed dtype (CPU)``). The branch is cast back to the input's dtype and
    the residual sum is taken in it, so every floating-point input works with every block and the output
    has the input's dtype: a float64 input to a default block gives a float64 output whose branch was
    computed in float32 (``block.double()`` for float64 throughout), a float16 or bfloat16 input a
    half-precision output whose branch was computed in float32. Integer and bool inputs are rejected: there
    is no residual to add to them.

    In eval mode the block is per sample (the norms use their running statistics), so a NaN or Inf in one
    sample never reaches another sample's output, and at ``alpha == 0`` it returns its input exactly, NaN
    and Inf included. In training the branch always runs, because ``alpha``'s gradient comes through it
    even at ``alpha == 0``: a non-finite input then gives a non-finite output, and batch norm's batch
    statistics spread it over the batch.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        in_channels: number of input channels C.
        transform: a registered name (``"fft"``, ``"aom"``, ``"dct"``), a (name, kwargs) pair with the
            transform's own arguments, e.g. ``("aom", {"init": "dct", "mode": "parametrization"})`` or
            ``("fft", {"impl": "matmul"})``, or a :class:`~monai_srb.spectral.SpectralTransform` instance.
        spatial_size: the input's spatial size. Required for ``"aom"``; for ``"fft"`` and ``"dct"`` it is
            the grid the spectral ReLU stores ``W``, ``B`` on (default ``DEFAULT_SPECTRAL_SIZE`` per
            axis), resampled for inputs of other sizes. An int is repeated over the spatial dims.
        reduction: bottleneck ratio, K = C / reduction (the paper: 2).
        groups: groups of the two 1x1 convs in ``phi``; must divide K. Default: K, so each bottleneck
            channel mixes ``reduction`` transformed channels (for the FFT, ``reduction`` complex channels
            with their real and imaginary parts).
        norm: norm of ``phi``, a MONAI norm name or (name, args); the paper uses batch norm.

    Raises:
        ValueError: on a bad ``spatial_dims`` (2 or 3, an int), ``in_channels``, ``transform``, ``reduction``
            or ``groups``; a ``spatial_size`` that is not one int of at least 1 or one per spatial dim (``0``
            and ``16.7`` are errors, not the default or 16); a missing ``spatial_size`` for ``"aom"``; the
            transform's own argument errors; in
            ``forward``, on a wrong channel count, an input that is not floating-point, an empty input
            (batch size 0), (AOM) a spatial size other than ``spatial_size``, or a float16 / bfloat16 block
            under TorchScript.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        transform: TransformSpec = "fft",
        spatial_size: Sequence[int] | int | None = None,
        reduction: int = 2,
        groups: int | None = None,
        norm: str | tuple = "batch",
    ) -> None:
        super().__init__()
        spatial_dims = check_spatial_dims(spatial_dims)
        in_channels = check_positive_int(in_channels, "in_channels")
        if spatial_size is None and transform_class(transform).needs_spatial_size:
            raise ValueError(
                f"transform={transform!r} needs spatial_size (the input's spatial size sizes the transform), got None."
            )
        if check_positive_int(reduction, "reduction") and in_channels % reduction:
            raise ValueError(f"reduction must be a positive divisor of in_channels={in_channels}, got {reduction}.")
        # ``is None``, not ``or``: spatial_size=0 is an error, not the default grid.
        size = check_spatial_size(DEFAULT_SPECTRAL_SIZE if spatial_size is None else spatial_size, spatial_dims)

        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.f = create_transform(transform, spatial_dims, size)
        spectral_channels = in_channels * self.f.channel_factor
        hidden = spectral_channels // reduction
        groups = hidden // self.f.channel_factor if groups is None else groups
        if groups < 1 or in_channels % groups or (in_channels // reduction) % groups:
            raise ValueError(
                f"groups must divide in_channels={in_channels} and in_channels // reduction="
                f"{in_channels // reduction}, got {groups}."
            )
        # Interleaved real/imag layout: groups dividing the complex channel counts keep each complex
        # channel's two parts inside one group.
        self.phi = SpectralSubNetwork(
            spatial_dims, spectral_channels, hidden, groups, self.f.table_size(size), self.f.frequency_grid(), norm=norm
        )
        self.alpha = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: in shape (batch, in_channels, spatial_1, spatial_2[, spatial_3]).

        Returns:
            tensor of the same shape and dtype as ``x``.
        """
        check_block_input(x, self.spatial_dims, self.in_channels, "SpectralResidualBlock")
        if not x.is_floating_point():
            # alpha cast to an integer dtype is 0: the block would silently return its input.
            raise ValueError(f"SpectralResidualBlock expects a floating-point input, got dtype {x.dtype}.")
        if x.numel() == 0:
            raise ValueError(
                f"SpectralResidualBlock expects a non-empty input (batch and every spatial size at least 1), "
                f"got shape {list(x.shape)}."
            )
        if self.alpha.dtype == torch.float16 or self.alpha.dtype == torch.bfloat16:
            if torch.jit.is_scripting():  # TorchScript has no functional_call
                raise ValueError(
                    f"a scripted SpectralResidualBlock needs float32 or float64 parameters, got {self.alpha.dtype}: "
                    f"script the float32 block, which takes half-precision input."
                )
            return self._forward_with_float32_copies(x)
        spatial_size = list(x.shape[2:])
        # The block's own dtype, float32 at least, whatever the input's and the autocast dtype.
        spectral_dtype = torch.float64 if self.alpha.dtype == torch.float64 else torch.float32
        if torch.jit.is_scripting():  # TorchScript has no autocast to leave
            y = self._branch(x.to(spectral_dtype), spatial_size)
        else:
            y = self._branch_outside_autocast(x.to(spectral_dtype), spatial_size)
        out = torch.addcmul(x, self.alpha.to(x.dtype), y.to(x.dtype))
        if self.training:
            return out
        # alpha = 0 returns x exactly even where the branch is not finite (0 * NaN is NaN, and an Inf in x
        # gives NaN in the branch). A mask, not an ``if``: no host sync, and traced exports keep both paths.
        # Not in training, where alpha's gradient at 0 comes through the branch.
        return torch.where(self.alpha == 0, x, out)

    @torch.jit.unused
    def _forward_with_float32_copies(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` of a float16 / bfloat16 block, run with float32 copies of its parameters and buffers."""
        # The copies are differentiable casts, so gradients reach the half-precision parameters; the inner
        # forward sees a float32 alpha and takes the float32 path.
        low = (torch.float16, torch.bfloat16)
        named = [*self.named_parameters(), *self.named_buffers()]
        copies = {name: t.float() for name, t in named if t.dtype in low}
        out = torch.func.functional_call(self, copies, (x,))
        if self.training:
            # batch norm updated the float32 copies of its running statistics in place
            with torch.no_grad():
                for name, buffer in self.named_buffers():
                    if name in copies:
                        buffer.copy_(copies[name])
        return out

    def _branch(self, x: torch.Tensor, spatial_size: list[int]) -> torch.Tensor:
        """``f^-1(phi(f(x)))``."""
        return self.f.inverse(self.phi(self.f(x), spatial_size), spatial_size)

    @torch.jit.unused
    def _branch_outside_autocast(self, x: torch.Tensor, spatial_size: list[int]) -> torch.Tensor:
        # Autocast would run the AOM/DCT matmuls and phi's 1x1 convs in half precision whatever their inputs'
        # dtype: a cast pass each way, and up to 4e-2 relative gradient error in bfloat16.
        with torch.autocast(x.device.type, enabled=False):
            return self._branch(x, spatial_size)
