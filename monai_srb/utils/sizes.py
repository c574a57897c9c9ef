"""
The size rules, one function each, that every transform, block, network and data set checks its arguments
and inputs with: a positive int (channels, widths), ``spatial_dims`` of 2 or 3, a spatial size of one int or one
per spatial axis, a smallest side, sides that a network's poolings divide, and a network input at least
``min_input_size``. A caller that checks more calls these and adds its own; the bundles' override checks
(``monai_srb.bundle.check_size``) phrase the same rules as overrides.

This module imports nothing of ``monai_srb``, so every subpackage can use it.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import torch

__all__ = [
    "check_input_size",
    "check_min_size",
    "check_multiple_of",
    "check_positive_int",
    "check_spatial_dims",
    "check_spatial_size",
]


def _shown(value: Any) -> str:
    """``value`` with its type, so that ``'2'`` and ``2`` read differently in a message."""
    return f"{value!r} ({type(value).__name__})"


def check_positive_int(value: Any, name: str) -> int:
    """
    ``value`` as an int when it is an integer of at least 1.

    Integer types that are not ``int`` (NumPy integers, 0-d integer tensors) are accepted; floats (even
    ``16.0``), strings and bools are not, as a silent ``int()`` would turn ``16.7`` into 16.

    Args:
        value: the value to check.
        name: the argument's name, for the error message.

    Raises:
        ValueError: when ``value`` is not an integer of at least 1, naming ``name``, the value and its type.
    """
    try:
        number = operator.index(value) if not isinstance(value, bool) else None
    except TypeError:
        number = None
    if number is None or number < 1:
        raise ValueError(f"{name} must be a positive int, got {_shown(value)}.")
    return number


def check_spatial_dims(spatial_dims: Any) -> int:
    """
    ``spatial_dims`` as an int when it is 2 or 3.

    Args:
        spatial_dims: the value to check.

    Raises:
        ValueError: otherwise, naming the value and its type (``'2'`` from a config is a str, not 2).
    """
    try:
        dims = operator.index(spatial_dims) if not isinstance(spatial_dims, bool) else None
    except TypeError:
        dims = None
    if dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3 (an int), got {_shown(spatial_dims)}.")
    return dims


def check_spatial_size(spatial_size: Sequence[Any] | Any, spatial_dims: int, name: str = "spatial_size") -> list[int]:
    """
    ``spatial_size`` as a list of ``spatial_dims`` ints of at least 1; a single int is repeated over the axes.

    Args:
        spatial_size: one positive int, or one per spatial axis.
        spatial_dims: number of spatial axes.
        name: the argument's name, for the error message.

    Raises:
        ValueError: on a wrong number of entries, or an entry that is not an integer of at least 1 (0,
            negative, ``16.7``, ``"16"``), naming ``name``, the value and its type.
    """
    scalar = isinstance(spatial_size, str) or not isinstance(spatial_size, Sequence)
    entries = [spatial_size] * spatial_dims if scalar else list(spatial_size)
    expected = f"{name} must be one positive int or {spatial_dims} positive ints (one per spatial dim)"
    if len(entries) != spatial_dims:
        raise ValueError(f"{expected}, got {spatial_size!r} ({len(entries)} entries).")
    sizes = []
    for s in entries:
        try:
            sizes.append(check_positive_int(s, name))
        except ValueError:
            raise ValueError(
                f"{expected}, got {_shown(spatial_size)}" + ("." if scalar else f": entry {_shown(s)} is not.")
            ) from None
    return sizes


def _sides(size: int | Sequence[int]) -> list[int]:
    return list(size) if isinstance(size, Sequence) else [size]


def _because(reason: str) -> str:
    return f" ({reason})" if reason else ""


def check_min_size(size: int | Sequence[int], minimum: int, name: str, reason: str = "") -> None:
    """
    Check that every side of a spatial size is at least ``minimum``.

    Args:
        size: one side, or one per spatial axis, each an int (checked by :func:`check_spatial_size` first).
        minimum: the smallest side accepted.
        name: what ``size`` is, for the message (``"spatial_size"``, ``"image_size"``).
        reason: what sets the minimum, for the message; ``""`` for none.

    Raises:
        ValueError: when a side is below ``minimum``, naming ``name``, ``minimum``, ``reason`` and ``size`` as given.
    """
    if any(side < minimum for side in _sides(size)):
        raise ValueError(f"{name} must be at least {minimum} per spatial dim{_because(reason)}, got {size!r}.")


def check_multiple_of(size: int | Sequence[int], multiple: int, name: str, reason: str = "") -> None:
    """
    Check that every side of a spatial size is a multiple of ``multiple``, e.g. 16 for a U-Net's four
    max-poolings (a network's own divisor).

    Args:
        size: one side, or one per spatial axis, each an int (checked by :func:`check_spatial_size` first).
        multiple: what every side must be a multiple of.
        name: what ``size`` is, for the message.
        reason: what sets ``multiple``, for the message; ``""`` for none.

    Raises:
        ValueError: when a side is not a multiple of ``multiple``, naming ``name``, ``multiple``, ``reason`` and
            ``size`` as given.
    """
    if any(side % multiple for side in _sides(size)):
        raise ValueError(f"{name} must be a multiple of {multiple} per spatial dim{_because(reason)}, got {size!r}.")


def check_input_size(x: torch.Tensor, spatial_dims: int, min_input_size: int, network: str, reason: str) -> None:
    """
    :func:`check_min_size` for a network's input tensor, the check every network's ``forward`` makes against
    its ``min_input_size``, so that a too small input fails with the limit named instead of deep inside a
    pooling or norm layer.

    TorchScript compiles it (a scripted ``forward`` calls it), so it compares the Python ints of ``x.shape``
    itself: tracing records them as constants, and under ``torch.compile`` / ``torch.export`` with dynamic
    shapes each becomes a guard on the symbolic size (``Dim.AUTO`` ranges start at the minimum), never a graph
    break.

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
