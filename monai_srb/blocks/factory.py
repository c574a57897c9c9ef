"""
The blocks by name (``"srb_fft"``, ``"srb_aom"``, ``"srb_dct"``, ``"srb_identity"``, ``"nonlocal"``,
``"double_attention"``), so that networks, ``insert_blocks``, bundle configs and the MLflow run record can name
them. An SRB is ``"srb_<transform>"`` for every transform of :data:`~monai_srb.spectral.registry.TRANSFORMS`
(``register_transform`` adds one); any other block is one more entry here, or :func:`register_block` outside
the package.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

from monai.utils import look_up_option
from torch import nn

from monai_srb.blocks.double_attention import DoubleAttentionBlock
from monai_srb.blocks.nonlocal_block import NonLocalBlock
from monai_srb.blocks.spectral_residual import SpectralResidualBlock
from monai_srb.spectral.registry import TRANSFORMS, registered_name

__all__ = [
    "BLOCK_TYPES",
    "BlockConstructor",
    "block_name",
    "block_names",
    "block_transform",
    "check_block",
    "is_block",
    "make_block",
    "needs_spatial_size",
    "register_block",
    "unregister_block",
]

# Builds a block as constructor(spatial_dims, in_channels, **block_args), with spatial_size=... when it takes one.
BlockConstructor = Callable[..., nn.Module]

_SRB_PREFIX = "srb_"
# The blocks other than the SRBs, after them in block lists and tables in this order; register_block appends.
_BLOCKS: dict[str, type[nn.Module]] = {"nonlocal": NonLocalBlock, "double_attention": DoubleAttentionBlock}


def _build_srb(
    transform: str,
    spatial_dims: int,
    in_channels: int,
    spatial_size: Sequence[int] | None = None,
    transform_args: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> SpectralResidualBlock:
    """:class:`SpectralResidualBlock` with the registered ``transform``, given its own ``transform_args``."""
    spec = (transform, dict(transform_args or {}))
    return SpectralResidualBlock(spatial_dims, in_channels, spec, spatial_size=spatial_size, **kwargs)


class _BlockTypes(Mapping[str, BlockConstructor]):
    """
    Block name -> constructor, read at each look-up so that a transform registered later adds its SRB:
    ``"srb_<transform>"`` per registered transform (``transform_args`` are the transform's own arguments), then
    the other blocks (their classes) in registration order. Change it with :func:`register_block` and
    :func:`unregister_block`.
    """

    def __getitem__(self, name: str) -> BlockConstructor:
        transform = block_transform(name)
        if transform is not None:
            return partial(_build_srb, transform)
        return _BLOCKS[name]

    def __iter__(self) -> Iterator[str]:
        yield from (f"{_SRB_PREFIX}{name}" for name in TRANSFORMS)
        yield from _BLOCKS

    def __len__(self) -> int:
        return len(TRANSFORMS) + len(_BLOCKS)

    def __repr__(self) -> str:
        return f"BLOCK_TYPES({list(self)})"


BLOCK_TYPES: Mapping[str, BlockConstructor] = _BlockTypes()


def block_transform(name: str) -> str | None:
    """The transform of an SRB's block name (``"srb_fft"`` -> ``"fft"``); ``None`` for any other name."""
    if isinstance(name, str) and name.startswith(_SRB_PREFIX) and name.removeprefix(_SRB_PREFIX) in TRANSFORMS:
        return name.removeprefix(_SRB_PREFIX)
    return None


def block_names() -> list[str]:
    """The names :func:`make_block` takes, in :data:`BLOCK_TYPES` order: the SRBs, then the other blocks."""
    return list(BLOCK_TYPES)


def register_block(name: str, constructor: type[nn.Module]) -> type[nn.Module]:
    """
    Make a block of one's own available by ``name`` to :func:`make_block`, ``insert_blocks(block=name)``, the
    networks' and bundles' ``block`` argument, and the MLflow run record (:func:`block_name`). Remove it again
    with :func:`unregister_block`. An SRB with a new transform is ``register_transform`` instead, which adds
    ``"srb_<name>"``.

    Args:
        name: the block's name; ``"srb_..."`` names belong to the SRBs.
        constructor: an ``nn.Module`` subclass built as ``constructor(spatial_dims, in_channels, **block_args)``
            and the identity at initialisation, so that inserting it leaves a network's output unchanged. When
            it has a ``spatial_size`` parameter, it is given the spatial size of the map it sees (and needs it
            when that parameter has no default).

    Returns:
        ``constructor``.

    Raises:
        ValueError: when ``name`` is not a non-empty string, starts with ``"srb_"`` or is taken, or
            ``constructor`` is not an ``nn.Module`` subclass that takes ``(spatial_dims, in_channels)``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_block needs a non-empty block name, got {name!r}.")
    if name.startswith(_SRB_PREFIX):
        raise ValueError(
            f"block names {_SRB_PREFIX!r}... are the SRBs of the registered transforms; register the transform "
            f"with monai_srb.spectral.register_transform({name.removeprefix(_SRB_PREFIX)!r}) instead, got {name!r}."
        )
    if name in _BLOCKS:
        raise ValueError(f"block name {name!r} is taken by {_BLOCKS[name].__name__}, got {constructor!r}.")
    expected = f"register_block({name!r}) needs an nn.Module subclass taking (spatial_dims, in_channels, ...)"
    if not (isinstance(constructor, type) and issubclass(constructor, nn.Module)):
        raise ValueError(f"{expected}, got {constructor!r}.")
    try:
        inspect.signature(constructor).bind_partial(2, 1)
    except TypeError as e:
        raise ValueError(f"{expected}, got {constructor.__name__}{inspect.signature(constructor)} ({e}).") from None
    _BLOCKS[name] = constructor
    return constructor


def unregister_block(name: str) -> type[nn.Module]:
    """
    Remove a block that :func:`register_block` (or the package) registered, e.g. in a test's teardown.

    Returns:
        the block's class.

    Raises:
        ValueError: on an SRB's name (unregister its transform with ``TRANSFORMS.pop``) or a name not registered.
    """
    if name not in _BLOCKS:
        raise ValueError(f"unregister_block takes one of {list(_BLOCKS)}, got {name!r}.")
    return _BLOCKS.pop(name)


def _takes_spatial_size(constructor: BlockConstructor) -> inspect.Parameter | None:
    return inspect.signature(constructor).parameters.get("spatial_size")


def needs_spatial_size(block: str) -> bool:
    """
    Whether ``block`` must be given the spatial size of its input: an SRB whose transform is built for one size
    (``"srb_aom"``), or a registered block whose ``spatial_size`` parameter has no default. A bundle passes
    its input size to such blocks alone, e.g. ``"$@patch_size if monai_srb.blocks.needs_spatial_size(@block)
    else None"``, so that the others keep their default spectral grid.

    Raises:
        ValueError: on an unknown ``block``, naming it and the known names.
    """
    block = look_up_option(block, block_names())
    transform = block_transform(block)
    if transform is not None:
        return bool(TRANSFORMS[transform].needs_spatial_size)
    param = _takes_spatial_size(_BLOCKS[block])
    return param is not None and param.default is inspect.Parameter.empty


def check_block(block: str, spatial_size: Sequence[int] | int | None) -> str:
    """
    ``block`` when :func:`make_block` can build it with ``spatial_size``.

    Args:
        block: a block name, see :func:`block_names`.
        spatial_size: the spatial size the caller will give the block, ``None`` when none.

    Raises:
        ValueError: on an unknown ``block`` (MONAI's ``look_up_option`` message, naming it and the known
            names), and when the block needs a spatial size (:func:`needs_spatial_size`, e.g. ``"srb_aom"``)
            and ``spatial_size`` is ``None``.
    """
    block = look_up_option(block, block_names())
    if spatial_size is None and needs_spatial_size(block):
        transform = block_transform(block)
        sized = (
            f"the input's spatial size sizes {TRANSFORMS[transform].__name__}"
            if transform is not None
            else f"{_BLOCKS[block].__name__} takes it without a default"
        )
        raise ValueError(f"block={block!r} needs spatial_size ({sized}), got None.")
    return block


def make_block(
    name: str, spatial_dims: int, in_channels: int, spatial_size: Sequence[int] | None = None, **kwargs: Any
) -> nn.Module:
    """
    Create a residual block that is the identity at initialisation.

    Args:
        name: a name of :data:`BLOCK_TYPES`: ``"srb_fft"``, ``"srb_aom"``, ``"srb_dct"``, ``"srb_identity"``
            (:class:`SpectralResidualBlock` with that transform, and ``"srb_<name>"`` for any transform
            registered later), ``"nonlocal"`` (:class:`NonLocalBlock`), ``"double_attention"``
            (:class:`DoubleAttentionBlock`), or a block of :func:`register_block`.
        spatial_dims: number of spatial dimensions, 2 or 3.
        in_channels: channels of the feature map the block sees.
        spatial_size: spatial size of that feature map (needed by ``"srb_aom"``; the spectral ReLU grid
            of the other SRBs; given to a registered block that has a ``spatial_size`` parameter; ignored by
            the attention blocks).
        kwargs: further constructor arguments of the block; for an SRB, ``transform_args`` holds the
            transform's own arguments (``{"init": "dct"}`` for ``"srb_aom"``, ``{"impl": "matmul"}`` for
            ``"srb_fft"``).

    Raises:
        ValueError: on an unknown ``name``, ``"srb_aom"`` without ``spatial_size``, and the block's own
            argument errors.
    """
    name = check_block(name, spatial_size)
    constructor = BLOCK_TYPES[name]
    if _takes_spatial_size(constructor) is not None:
        kwargs["spatial_size"] = spatial_size
    return constructor(spatial_dims, in_channels, **kwargs)


def is_block(module: nn.Module) -> bool:
    """Whether ``module`` is a registered block: an SRB (whatever its transform) or a class of :data:`BLOCK_TYPES`."""
    return isinstance(module, (SpectralResidualBlock, *_BLOCKS.values()))


def block_name(module: nn.Module) -> str:
    """
    The name ``module`` is registered under, as :func:`make_block` takes it: ``"srb_<transform>"`` for an SRB
    (its transform's registered name, or the transform's class name when not registered); for the other blocks
    the name of its class, or else of the first registered class it is an instance of; the class name of a
    module that is no registered block.
    """
    if isinstance(module, SpectralResidualBlock):
        return f"{_SRB_PREFIX}{registered_name(module.f)}"
    for test in (lambda cls: type(module) is cls, lambda cls: isinstance(module, cls)):
        for name, cls in _BLOCKS.items():
            if test(cls):
                return name
    return type(module).__name__


def __getattr__(name: str) -> Any:
    # ATTENTION_BLOCKS held the blocks other than the SRBs before the registry; kept for one release.
    if name == "ATTENTION_BLOCKS":
        warnings.warn(
            "monai_srb.blocks.factory.ATTENTION_BLOCKS is deprecated and will be removed in the next release; read "
            "BLOCK_TYPES (or add a block with register_block) instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return {n: cls for n, cls in _BLOCKS.items() if cls in (NonLocalBlock, DoubleAttentionBlock)}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
