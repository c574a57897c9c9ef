"""The size rules of monai_srb.utils.sizes, each with the message that names the value, and the old module paths."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest
import torch

from monai_srb.utils import (
    check_input_size,
    check_min_size,
    check_multiple_of,
    check_positive_int,
    check_spatial_dims,
    check_spatial_size,
)

# (call, what it returns)
GOOD = [
    (lambda: check_positive_int(3, "in_channels"), 3),
    (lambda: check_positive_int(np.int64(3), "in_channels"), 3),
    (lambda: check_spatial_dims(3), 3),
    (lambda: check_spatial_size(16, 3), [16, 16, 16]),
    (lambda: check_spatial_size((48, np.int32(64)), 2), [48, 64]),
    (lambda: check_min_size((32, 48), 32, "image_size"), None),
    (lambda: check_min_size(29, 29, "spatial_size"), None),
    (lambda: check_multiple_of((32, 48), 16, "spatial_size"), None),
    (lambda: check_input_size(torch.zeros(1, 1, 16, 16), 2, 16, "Net", "why"), None),
    # another rank is left to the network's first layer
    (lambda: check_input_size(torch.zeros(1, 1, 8), 2, 16, "Net", "why"), None),
]


@pytest.mark.parametrize("call, expected", GOOD)
def test_sizes_that_pass(call, expected):
    assert call() == expected


# (call, the message, whole)
BAD = [
    (lambda: check_positive_int(0, "in_channels"), r"in_channels must be a positive int, got 0 (int)."),
    (lambda: check_positive_int(16.0, "width"), r"width must be a positive int, got 16.0 (float)."),
    (lambda: check_positive_int(True, "width"), r"width must be a positive int, got True (bool)."),
    (lambda: check_spatial_dims("2"), r"spatial_dims must be 2 or 3 (an int), got '2' (str)."),
    (lambda: check_spatial_size((16, 16), 3),
     r"spatial_size must be one positive int or 3 positive ints (one per spatial dim), got (16, 16) (2 entries)."),
    (lambda: check_spatial_size((16, 0), 2, "patch_size"),
     r"patch_size must be one positive int or 2 positive ints (one per spatial dim), got (16, 0) (tuple): "
     r"entry 0 (int) is not."),
    (lambda: check_spatial_size("16", 2),
     r"spatial_size must be one positive int or 2 positive ints (one per spatial dim), got '16' (str)."),
    (lambda: check_min_size((64, 28), 29, "spatial_size", "five halvings"),
     r"spatial_size must be at least 29 per spatial dim (five halvings), got (64, 28)."),
    (lambda: check_min_size(8, 16, "size"), r"size must be at least 16 per spatial dim, got 8."),
    (lambda: check_multiple_of([64, 72], 16, "spatial_size", "U-Net: 4 max-poolings"),
     r"spatial_size must be a multiple of 16 per spatial dim (U-Net: 4 max-poolings), got [64, 72]."),
    (lambda: check_input_size(torch.zeros(2, 1, 16, 15), 2, 16, "SRBUNet", "4 max-poolings"),
     r"SRBUNet needs an input of at least 16 per spatial dim (4 max-poolings), got shape [2, 1, 16, 15]."),
]


@pytest.mark.parametrize("call, message", BAD)
def test_sizes_that_fail_name_the_value(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert str(error.value) == message


@pytest.mark.parametrize(
    "module, names",
    [
        ("monai_srb.spectral.sizes", ["check_positive_int", "check_spatial_dims", "check_spatial_size"]),
        ("monai_srb.nets.input_size", ["check_input_size"]),
    ],
)
def test_the_old_modules_warn_and_hold_the_same_functions(module, names):
    sys.modules.pop(module, None)
    with pytest.warns(DeprecationWarning, match=rf"{module} is deprecated"):
        old = importlib.import_module(module)
    sizes = importlib.import_module("monai_srb.utils.sizes")
    assert old.__all__ == names and all(getattr(old, n) is getattr(sizes, n) for n in names)
