from __future__ import annotations

import pytest
import torch

from monai_srb.spectral import (
    AdaptiveOrthogonalTransform,
    CosineTransform,
    FourierTransform,
    IdentityTransform,
    SpectralTransform,
    register_transform,
)
from monai_srb.spectral.registry import TRANSFORMS, create_transform, registered_name, transform_class


def test_builtin_names_in_order():
    assert TRANSFORMS == {
        "fft": FourierTransform,
        "aom": AdaptiveOrthogonalTransform,
        "dct": CosineTransform,
        "identity": IdentityTransform,
    }
    assert [c.needs_spatial_size for c in TRANSFORMS.values()] == [False, True, False, False]


# (transform spec, spatial dims, spatial size, expected class, expected attributes)
CASES = [
    ("fft", 2, [8, 6], FourierTransform, {"impl": "fft"}),
    (("fft", {"impl": "matmul"}), 3, [4, 4, 4], FourierTransform, {"impl": "matmul"}),
    ("aom", 2, [5, 7], AdaptiveOrthogonalTransform, {"spatial_size": [5, 7], "mode": "qr"}),
    (("aom", {"mode": "parametrization"}), 2, [4, 4], AdaptiveOrthogonalTransform, {"mode": "parametrization"}),
    ("dct", 3, [3, 4, 5], CosineTransform, {"spatial_size": [3, 4, 5]}),
    ("identity", 3, [3, 4, 5], IdentityTransform, {"spatial_dims": 3}),
]


@pytest.mark.parametrize("spec,dims,size,cls,attributes", CASES)
def test_create_by_name(spec, dims, size, cls, attributes):
    f = create_transform(spec, dims, size)
    assert type(f) is cls and transform_class(spec) is cls
    assert {k: getattr(f, k) for k in attributes} == attributes
    assert registered_name(f) == (spec if isinstance(spec, str) else spec[0])


def test_aom_init_from_the_pair():
    f = create_transform(("aom", {"init": "dct"}), 2, [4, 4])
    torch.testing.assert_close(f.orthogonal_matrices[0].detach(), CosineTransform([4, 4]).dct_0)


def test_an_instance_is_used_as_it_is():
    f = FourierTransform(2, impl="matmul")
    assert create_transform(f, 2, [8, 8]) is f and transform_class(f) is FourierTransform


def test_unregistered_instance_is_named_by_its_class():
    class Local(FourierTransform):
        pass

    assert registered_name(Local(2)) == "Local"


@pytest.mark.parametrize(
    "call,error,message",
    [
        (lambda: create_transform("wavelet", 2, [8, 8]), ValueError, r"(?s)'wavelet'.*Available options"),
        (lambda: transform_class(("ftt", {})), ValueError, "did you mean 'fft'"),
        (lambda: create_transform(("fft", {"impl": "dft"}), 2, [8, 8]), ValueError, r"(?s)'dft'.*Available options"),
        (lambda: register_transform("fft")(CosineTransform), ValueError, "'fft' is taken by FourierTransform"),
        (lambda: register_transform("conv")(torch.nn.Conv2d), ValueError, "needs a SpectralTransform subclass"),
    ],
)
def test_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()
    assert list(TRANSFORMS) == ["fft", "aom", "dct", "identity"]


def test_the_contract_is_abstract():
    with pytest.raises(TypeError, match="abstract"):
        SpectralTransform()
