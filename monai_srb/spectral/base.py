"""
The contract every local-to-global transform ``f`` keeps (:class:`SpectralTransform`), and where the entries of
its spectrum sit in frequency (:class:`FrequencyGrid`), which layers on the spectrum (the spectral ReLU) read.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

__all__ = ["FrequencyGrid", "SpectralTransform", "holds_fixed_size_transform"]


class FrequencyGrid(nn.Module):
    """
    Where each entry of a spectral grid sits in frequency: along a spectral axis whose signal has length ``n``,
    the entry with integer index ``k`` stands for the normalised frequency ``k / n`` (in ``[-0.5, 0.5)`` for a
    two-sided FFT axis, ``[0, 0.5]`` for a one-sided one, ``[0, 1)`` for a basis index). The indices of an axis,
    sorted, are consecutive integers; their order is the order of the axis in the spectrum.

    Integers rather than normalised floats, so that a layer resampling a per-frequency table from one size to
    another computes its positions ``k * n_src / n_dst`` exactly. A module without parameters or buffers, so
    that such a layer can hold one (TorchScript calls it) without adding state.

    This base class is the basis-index grid (DCT, AOM): entry ``k`` of an axis of length ``n`` is ``k / n``.
    """

    def indices(self, spatial_size: list[int]) -> list[list[int]]:
        """
        Args:
            spatial_size: the spatial size of the signal.

        Returns:
            per spectral axis, the frequency index of each entry, in the spectrum's order.
        """
        out: list[list[int]] = []
        for n in spatial_size:
            out.append([k for k in range(n)])
        return out

    def spectral_size(self, spatial_size: list[int]) -> list[int]:
        """The size of the spectral grid for a signal of ``spatial_size``."""
        return [len(axis) for axis in self.indices(spatial_size)]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "indices" in cls.__dict__ and "index_tensor" not in cls.__dict__:
            # a grid defined by its lists alone stays right; a function of its own per class (TorchScript
            # compiles a method by its function's name, once per class)
            def index_tensor(
                self: FrequencyGrid, spatial_size: list[int], axis: int, device: torch.device
            ) -> torch.Tensor:
                return torch.tensor(self.indices(spatial_size)[axis], dtype=torch.long, device=device)

            cls.index_tensor = index_tensor

    def index_tensor(self, spatial_size: list[int], axis: int, device: torch.device) -> torch.Tensor:
        """
        :meth:`indices` of one axis as an int64 tensor, in tensor ops only (here ``arange``), so that
        ``torch.compile`` with dynamic shapes and ``torch.export`` keep one graph for every size, where a Python
        list of ``range(n)`` fixes ``n``. A subclass that overrides :meth:`indices` alone gets the tensor of its
        lists (size-specialised under the compiler); the built-in grids override both.
        """
        return torch.arange(spatial_size[axis], device=device)


class SpectralTransform(nn.Module, ABC):
    """
    A unitary local-to-global transform ``f`` (the paper's Eqn. 1 and 7), applied to every channel, and its
    inverse. The Spectral Residual Block and its sub-network ``phi`` rely on this and nothing else:

    - ``forward(x)`` maps (batch, channels, *spatial_size) to a real spectrum (batch, channel_factor * channels,
      *spectral_size(spatial_size)); ``inverse(z, spatial_size)`` maps it back.
    - ``channel_factor``: spectral channels per input channel (2 for a complex spectrum with its real and
      imaginary parts as channels, 1 for a real one).
    - ``frequency_grid()``: where the spectrum's entries sit in frequency, see :class:`FrequencyGrid`;
      ``spectral_size`` follows from it.
    - ``needs_spatial_size``: the transform is built for one input size and takes only that one (AOM): a block
      with it needs the input's ``spatial_size``. Otherwise it takes any size, and ``spatial_size`` only sizes
      the grid the spectral ReLU stores its tables on.
    - ``create(spatial_dims, spatial_size, **kwargs)``: how a block builds it by its registered name
      (``monai_srb.spectral.registry.TRANSFORMS``).
    - ``table_size(spatial_size)``: the signal size the spectral ReLU's tables are stored for (default: the
      block's ``spatial_size``).
    """

    channel_factor: int = 1
    needs_spatial_size: bool = False

    @classmethod
    def create(cls, spatial_dims: int, spatial_size: list[int], **kwargs: Any) -> SpectralTransform:
        """
        Build the transform for a block. The default passes ``spatial_dims``; transforms built from a spatial
        size (matrices per axis) override it.

        Args:
            spatial_dims: number of spatial dimensions, 2 or 3.
            spatial_size: the block's input size, or the size of the spectral ReLU's grid when the block got none.
            kwargs: the transform's own arguments.
        """
        return cls(spatial_dims, **kwargs)

    def frequency_grid(self) -> FrequencyGrid:
        """Where the spectrum's entries sit in frequency; the default is the basis-index grid."""
        return FrequencyGrid()

    def spectral_size(self, spatial_size: list[int]) -> list[int]:
        """Size of the spectral grid for an input of ``spatial_size``."""
        return self.frequency_grid().spectral_size(spatial_size)

    def table_size(self, spatial_size: list[int]) -> list[int]:
        """
        The signal size whose spectral grid the spectral ReLU of a block built for ``spatial_size`` stores its
        ``W``, ``B`` on (resampled to each input's own grid). The default is ``spatial_size`` itself; the
        identity control stores the FFT's table size, so that SRB_I has SRB_F's parameter count.
        """
        return list(spatial_size)

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: in shape (batch, channels, *spatial_size).

        Returns:
            the real spectrum in shape (batch, channel_factor * channels, *spectral_size(spatial_size)).
        """

    @abstractmethod
    def inverse(self, z: torch.Tensor, spatial_size: list[int]) -> torch.Tensor:
        """
        Args:
            z: a spectrum in shape (batch, channel_factor * channels, *spectral_size(spatial_size)).
            spatial_size: the spatial size of the signal to recover.

        Returns:
            tensor in shape (batch, channels, *spatial_size).
        """


def holds_fixed_size_transform(network: nn.Module) -> bool:
    """
    Whether ``network`` holds a transform built for one input size (``needs_spatial_size``: SRB_A), so that it
    takes only that size (its export and its logged model keep it).

    Args:
        network: any module.
    """
    return any(isinstance(m, SpectralTransform) and m.needs_spatial_size for m in network.modules())
