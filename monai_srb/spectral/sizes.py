"""Checks of the size arguments of every transform, block and network: ``spatial_dims``, channels, ``spatial_size``."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

__all__ = ["check_positive_int", "check_spatial_dims", "check_spatial_size"]


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
