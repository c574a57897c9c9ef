"""
The local-to-global transforms by name (``"fft"``, ``"aom"``, ``"dct"``, and the ``"identity"`` control), so that
blocks, networks and bundle configs can name them. A new transform is one more entry here, or
``register_transform`` outside the package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from monai.networks.layers.factories import split_args
from monai.utils import look_up_option

from monai_srb.spectral.adaptive_orthogonal import AdaptiveOrthogonalTransform
from monai_srb.spectral.base import SpectralTransform
from monai_srb.spectral.cosine import CosineTransform
from monai_srb.spectral.fourier import FourierTransform
from monai_srb.spectral.identity import IdentityTransform

__all__ = [
    "TRANSFORMS",
    "TransformSpec",
    "create_transform",
    "register_transform",
    "registered_name",
    "transform_class",
]

# A transform name, a (name, kwargs) pair (as MONAI's norm and act arguments) or a built transform.
TransformSpec = str | tuple[str, dict[str, Any]] | SpectralTransform

# In this order in block lists and tables.
TRANSFORMS: dict[str, type[SpectralTransform]] = {
    "fft": FourierTransform,
    "aom": AdaptiveOrthogonalTransform,
    "dct": CosineTransform,
    # SRB_I, the ablation control: SRB_F's phi and parameters, no mixing across positions.
    "identity": IdentityTransform,
}

T = TypeVar("T", bound=type[SpectralTransform])


def register_transform(name: str) -> Callable[[T], T]:
    """
    Class decorator (or ``register_transform(name)(cls)``) that makes a :class:`SpectralTransform` available by
    ``name`` to :class:`monai_srb.blocks.SpectralResidualBlock` (``transform=name``) and to the block factory
    (``block="srb_<name>"``). Remove it again with ``TRANSFORMS.pop(name)``.

    Raises:
        ValueError: when ``name`` is taken or the class is not a :class:`SpectralTransform`.
    """

    def add(cls: T) -> T:
        if name in TRANSFORMS:
            raise ValueError(f"transform name {name!r} is taken by {TRANSFORMS[name].__name__}, got {cls!r}.")
        if not (isinstance(cls, type) and issubclass(cls, SpectralTransform)):
            raise ValueError(f"register_transform({name!r}) needs a SpectralTransform subclass, got {cls!r}.")
        TRANSFORMS[name] = cls
        return cls

    return add


def transform_class(transform: TransformSpec) -> type[SpectralTransform]:
    """
    The class of ``transform``: a registered name, a (name, kwargs) pair or a :class:`SpectralTransform`.

    Raises:
        ValueError: on an unknown name.
    """
    if isinstance(transform, SpectralTransform):
        return type(transform)
    return look_up_option(split_args(transform)[0], TRANSFORMS)


def create_transform(transform: TransformSpec, spatial_dims: int, spatial_size: list[int]) -> SpectralTransform:
    """
    The transform a block asks for: built with its class's ``create`` when given by name, as it is otherwise.

    Args:
        transform: a registered name, a (name, kwargs) pair or a :class:`SpectralTransform`.
        spatial_dims: number of spatial dimensions, 2 or 3.
        spatial_size: the block's input size, or the size of the spectral ReLU's grid when the block got none.

    Raises:
        ValueError: on an unknown name, and the transform's own argument errors.
    """
    if isinstance(transform, SpectralTransform):
        return transform
    name, kwargs = split_args(transform)
    return look_up_option(name, TRANSFORMS).create(spatial_dims, spatial_size, **kwargs)


def registered_name(transform: SpectralTransform) -> str:
    """The name ``transform``'s class is registered under, or the class name when it is not registered."""
    for name, cls in TRANSFORMS.items():
        if type(transform) is cls:
            return name
    return type(transform).__name__
