"""What every subpackage shares and that belongs to none of them: the size rules of arguments and inputs."""

from __future__ import annotations

from monai_srb.utils.sizes import (
    check_input_size,
    check_min_size,
    check_multiple_of,
    check_positive_int,
    check_spatial_dims,
    check_spatial_size,
)

__all__ = [
    "check_input_size",
    "check_min_size",
    "check_multiple_of",
    "check_positive_int",
    "check_spatial_dims",
    "check_spatial_size",
]
