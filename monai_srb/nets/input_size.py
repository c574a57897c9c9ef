"""The check every network's ``forward`` makes of its input against the smallest size it takes (``min_input_size``)."""

from __future__ import annotations

import torch

__all__ = ["check_input_size"]


def check_input_size(x: torch.Tensor, spatial_dims: int, min_input_size: int, network: str, reason: str) -> None:
    """
    Check that every spatial size of ``x`` is at least ``min_input_size``, so that a too small input fails with
    the limit named instead of deep inside a pooling or norm layer.

    The comparisons are of Python ints from ``x.shape``: TorchScript compiles them, tracing records them as
    constants, and under ``torch.compile`` / ``torch.export`` with dynamic shapes each becomes a guard on the
    symbolic size (``Dim.AUTO`` ranges start at the minimum), never a graph break.

    Args:
        x: the network's input, in shape (batch, channels, spatial_1, ..., spatial_{spatial_dims}).
        spatial_dims: the network's number of spatial dimensions.
        min_input_size: the smallest size the network takes along every spatial dim.
        network: the network's class name, for the message.
        reason: what sets the minimum, for the message.

    Raises:
        ValueError: when ``x`` has ``spatial_dims`` spatial axes and one of them is below ``min_input_size``,
            naming ``network``, the minimum, ``reason`` and the shape received. An input of another rank is
            left to the network's first layer, whose error names its shape.
    """
    if x.ndim == spatial_dims + 2:
        for size in x.shape[2:]:
            if size < min_input_size:
                raise ValueError(
                    f"{network} needs an input of at least {min_input_size} per spatial dim ({reason}), "
                    f"got shape {list(x.shape)}."
                )
