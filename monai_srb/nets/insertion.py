"""Insert the paper's blocks into an existing network: wrap named submodules, sized by a shape probe."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.utils import look_up_option
from torch import nn

from monai_srb.blocks.factory import block_names, is_block, make_block

__all__ = ["InsertedBlock", "insert_blocks", "POSITIONS"]

POSITIONS = ("before", "after")


class InsertedBlock(nn.Module):
    """
    A submodule with a block applied to its input (``"before"``: ``module(block(x), *args, **kwargs)``)
    or to its output (``"after"``: ``block(module(x, *args, **kwargs))``).

    The wrapped submodule stays reachable as ``module`` and the new block as ``block``, so a state dict
    reads ``<point>.module.<original keys>`` and ``<point>.block.<block keys>``, and a CAM hooked on
    ``<point>`` sees the map after the block for ``"after"``.

    ``torch.jit.script`` cannot compile ``*args`` and ``**kwargs``: scripting a network swaps each
    ``InsertedBlock`` in place for its one-tensor form (``forward(x)``, same ``module`` and ``block``) through
    torch's ``__prepare_scriptable__``, which works wherever the point is called with one tensor.

    Args:
        module: the submodule to wrap.
        block: the block, taking and returning a (batch, channels, *spatial) tensor, e.g. from
            :func:`monai_srb.blocks.factory.make_block`.
        position: ``"before"`` or ``"after"`` the submodule.
        point: the submodule's dotted name in its network, used in error messages.

    Raises:
        ValueError: on a bad ``position``; in ``forward``, for ``"after"``, when ``module`` does not return a
            tensor.
    """

    def __init__(self, module: nn.Module, block: nn.Module, position: str = "after", point: str = "") -> None:
        super().__init__()
        self.module = module
        self.block = block
        self.position = look_up_option(position, POSITIONS)
        self.point = point

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        """
        Args:
            x: the submodule's first input, in shape (batch, channels, spatial_1[, spatial_2, ...]) for
                ``"before"``.
            args: further positional inputs of the submodule.
            kwargs: keyword inputs of the submodule.

        Returns:
            the submodule's output (``"before"``), or the block applied to it (``"after"``).
        """
        if self.position == "before":
            return self.module(self.block(x), *args, **kwargs)
        out = self.module(x, *args, **kwargs)
        if not isinstance(out, torch.Tensor):
            raise ValueError(
                f"a block inserted after {self.point!r} needs a tensor output, got {type(out).__name__}; "
                "insert it 'before' the module that consumes that output instead."
            )
        return self.block(out)

    def __prepare_scriptable__(self) -> nn.Module:
        return _ScriptableInsertedBlock(self)


class _ScriptableInsertedBlock(InsertedBlock):
    """The one-tensor form of :class:`InsertedBlock` that TorchScript compiles."""

    def __init__(self, wrapper: InsertedBlock) -> None:
        super().__init__(wrapper.module, wrapper.block, wrapper.position, wrapper.point)
        self.train(wrapper.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if self.position == "before":
            return self.module(self.block(x))
        return self.block(self.module(x))

    def __prepare_scriptable__(self) -> nn.Module:
        return self


class _Record:
    """What the probe saw at one point: the shape of the tensor the block would see at each call."""

    def __init__(self, order: int) -> None:
        self.order = order  # when the module was first entered: outer modules before the modules they call
        self.shapes: list[tuple[int, ...] | None] = []  # None: not a tensor
        self.dtype: torch.dtype | None = None
        self.device: torch.device | None = None

    def add(self, t: Any) -> None:
        if not isinstance(t, torch.Tensor):
            self.shapes.append(None)
            return
        if not self.shapes:
            self.dtype, self.device = t.dtype, t.device
        self.shapes.append(tuple(t.shape))

    def problem(self, spatial_dims: int) -> str | None:
        """Why no block fits here, or None when every call shows the same (batch, C, *spatial) tensor."""
        if not self.shapes:
            return "was not called in the probe's forward pass"
        if any(s is None for s in self.shapes):
            return "sees something that is not a tensor"
        if len(set(self.shapes)) > 1:
            # A module called more than once (e.g. a shared activation) would run one block on every call.
            return f"is called {len(self.shapes)} times with different shapes {sorted(set(self.shapes))}"
        shape = self.shapes[0]
        if shape is None or len(shape) != spatial_dims + 2:
            return (
                f"sees shape {list(shape or [])}, expected (batch, channels, *spatial) with {spatial_dims} spatial dims"
            )
        return None


def _probe(
    network: nn.Module, names: Sequence[str], position: str, example_input: torch.Tensor
) -> dict[str, _Record]:
    """
    Run ``example_input`` through ``network`` (eval mode, no grad) recording, for each named submodule, the
    shape of its first positional input (``"before"``) or its output (``"after"``) at every call.
    """
    wanted = set(names)
    records: dict[str, _Record] = {}
    handles = []
    for name, module in network.named_modules():
        if name not in wanted:
            continue

        def pre_hook(mod: nn.Module, args: tuple, name: str = name) -> None:
            if name not in records:
                records[name] = _Record(len(records))
            if position == "before":
                records[name].add(args[0] if args else None)

        def post_hook(mod: nn.Module, args: tuple, output: Any, name: str = name) -> None:
            if position == "after":
                records[name].add(output)

        handles.append(module.register_forward_pre_hook(pre_hook))
        handles.append(module.register_forward_hook(post_hook))

    modes = {module: module.training for module in network.modules()}
    try:
        network.eval()
        with torch.no_grad():
            network(example_input)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    return records


def _deepest_point(records: dict[str, _Record], spatial_dims: int) -> str | None:
    """The point of ``insert_blocks(points=None)``: see its docstring for the rule."""
    best_key: tuple[int, int, int] | None = None
    best_name = None
    for name, record in records.items():
        if record.problem(spatial_dims) is not None:
            continue
        shape = record.shapes[0]
        assert shape is not None
        positions = 1
        for s in shape[2:]:
            positions *= s
        if positions == 1:  # a pooled vector, not a feature map
            continue
        key = (positions, -shape[1], record.order)
        if best_key is None or key < best_key:
            best_key, best_name = key, name
    return best_name


def _block_paths(modules: dict[str, nn.Module]) -> list[str]:
    """
    The names of the blocks already in a network: its registered blocks (SRBs, non-local, A2, ...) and the
    ``block`` of each :class:`InsertedBlock`. Their insides are never points: inside an SRB the probe sees
    spectra, not feature maps.
    """
    inserted = [f"{n}.block" for n, m in modules.items() if isinstance(m, InsertedBlock)]
    return [n for n, m in modules.items() if n and is_block(m)] + inserted


def _check_points(network: nn.Module, modules: dict[str, nn.Module], names: list[str] | None) -> None:
    """The checks of ``insert_blocks``'s ``points`` that need no probe; see its Raises."""
    blocks = _block_paths(modules)
    inserted = [n for n, m in modules.items() if isinstance(m, InsertedBlock)]
    if names is None:
        if inserted:
            raise ValueError(
                f"insert_blocks(points=None): {type(network).__name__} already holds blocks inserted at {inserted} "
                "(insert_blocks called twice, e.g. a re-run notebook cell?); points=None inserts the first block "
                "only, name the points explicitly to add more."
            )
        return
    nested = [n for n in names if any(n.startswith(f"{b}.") for b in blocks)]
    if nested:
        raise ValueError(
            f"cannot insert a block inside another block: {nested} lie inside the blocks at "
            f"{[b for b in blocks if any(n.startswith(f'{b}.') for n in nested)]}."
        )
    for name in names:
        if name == "" or name not in modules:
            valid = [n for n in modules if n][:8]
            raise ValueError(
                f"point {name!r} is not a submodule of {type(network).__name__}; valid names are those of "
                f"network.named_modules() except '', e.g. {valid}."
            )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"points must name each submodule once, got {repeated} more than once.")


def _example_tensor(network: nn.Module, example_input: torch.Tensor | Sequence[int] | None) -> torch.Tensor:
    """``example_input``, checked, as the probe's input: the tensor, or zeros of the shape on the network's device."""
    if example_input is None:
        raise ValueError(
            "insert_blocks needs example_input (a tensor or an input shape such as (1, 1, 64, 64)) to probe "
            "the channels and spatial size at each point, got None."
        )
    if not isinstance(example_input, torch.Tensor):
        shape = list(example_input)
        if not all(isinstance(s, int) and s > 0 for s in shape):
            raise ValueError(f"example_input as a shape must hold positive ints, got {example_input}.")
        param = next(network.parameters(), None)
        example_input = torch.zeros(
            shape,
            device=None if param is None else param.device,
            dtype=None if param is None or not param.is_floating_point() else param.dtype,
        )
    if example_input.ndim not in (4, 5):
        raise ValueError(
            "example_input must be (batch, in_channels, *spatial) with 2 or 3 spatial dims, "
            f"got shape {list(example_input.shape)}."
        )
    return example_input


def _find_points(
    network: nn.Module,
    points: str | Sequence[str] | None,
    position: str,
    example_input: torch.Tensor | Sequence[int] | None,
) -> dict[str, _Record]:
    """
    Where :func:`insert_blocks` puts its blocks: the points, checked (see its docstring for the rule of
    ``points=None`` and the checks), each with the probe's record of the map its block sees; in the order of
    ``points``, none for an empty sequence. ``network`` is left as it was.
    """
    names = [points] if isinstance(points, str) else None if points is None else list(points)
    if names is not None and not names:
        return {}
    modules = dict(network.named_modules())
    _check_points(network, modules, names)
    x = _example_tensor(network, example_input)
    spatial_dims = x.ndim - 2
    blocks = _block_paths(modules)
    candidates = [n for n in modules if n and not any(n == b or n.startswith(f"{b}.") for b in blocks)]
    records = _probe(network, candidates if names is None else names, position, x)
    if names is None:
        deepest = _deepest_point(records, spatial_dims)
        if deepest is None:
            raise ValueError(
                f"no submodule of {type(network).__name__} sees a (batch, channels, *spatial) map with "
                f"{spatial_dims} spatial dims {position} it for example_input of shape {list(x.shape)}; name "
                "the points explicitly."
            )
        names = [deepest]
    for name in names:
        problem = records.get(name, _Record(-1)).problem(spatial_dims)
        if problem is not None:
            raise ValueError(f"cannot insert a block {position} point {name!r}: it {problem}.")
    return {name: records[name] for name in names}


def _build_blocks(records: dict[str, _Record], block: str, block_args: dict[str, Any]) -> dict[str, nn.Module]:
    """One new block per point, sized by its probed shape, on the device and float dtype the probe saw there."""
    explicit_size = "spatial_size" in block_args
    block_args = dict(block_args)
    spatial_size = block_args.pop("spatial_size", None)
    blocks = {}
    for name, record in records.items():
        shape = record.shapes[0]
        assert shape is not None
        new_block = make_block(
            block, len(shape) - 2, shape[1], spatial_size=spatial_size if explicit_size else list(shape[2:]),
            **block_args,
        )
        if record.dtype is not None and record.dtype.is_floating_point:
            new_block.to(device=record.device, dtype=record.dtype)
        else:
            new_block.to(device=record.device)
        blocks[name] = new_block
    return blocks


def _wrap(network: nn.Module, blocks: dict[str, nn.Module], position: str) -> None:
    """Replace each point of ``blocks`` by an :class:`InsertedBlock` of it and its block, in its train/eval mode."""
    # Modules are looked up before any replacement, so nested points ("layer4", "layer4.0") both work.
    modules = dict(network.named_modules())
    for name, new_block in blocks.items():
        original = modules[name]
        new_block.train(original.training)
        wrapper = InsertedBlock(original, new_block, position, point=name)
        wrapper.training = original.training
        parent_name, _, child_name = name.rpartition(".")
        setattr(modules[parent_name], child_name, wrapper)


def insert_blocks(
    network: nn.Module,
    points: str | Sequence[str] | None = None,
    block: str = "srb_fft",
    position: str = "before",
    example_input: torch.Tensor | Sequence[int] | None = None,
    **block_args: Any,
) -> nn.Module:
    """
    Insert a block (an SRB or one of the attention blocks it is compared with) before or after named
    submodules of an existing network (MONAI's ``UNet``, ``BasicUNet``, ``DynUNet``, ``SegResNet``,
    ``DenseNet121``, ``ResNet``, ...). Each point is replaced by an :class:`InsertedBlock` holding the original
    submodule as ``module`` and the new block as ``block``. The blocks are the identity at initialisation, so
    the network computes exactly what it did before.

    The channel count and spatial size each block sees come from a shape probe: ``example_input`` runs
    through the network in eval mode under ``torch.no_grad()`` with hooks recording each point's first
    positional input (``"before"``) or output (``"after"``); the train/eval mode of every submodule is
    restored afterwards. The new blocks take the mode, device and dtype of the submodule they wrap.

    ``points=None`` inserts one block at the deepest feature map. Among all submodules (containers
    included, the network itself excluded) whose input (``"before"``) or output (``"after"``) is a
    (batch, channels, *spatial) tensor with the same shape at every call and more than one spatial
    position, it picks the one with the fewest spatial positions, then the most channels, then the one
    entered first in the forward pass, i.e. the outermost of nested modules that share that map
    (``"after"``: ``"layer4"`` rather than ``"layer4.2.bn3"`` in a ``ResNet``, ``"features"`` (after ``norm5``)
    in a ``DenseNet121``, ``"down_4"`` in a ``BasicUNet``). The rule follows the tensors, not the architecture's
    intent: ``"before"`` in a ``ResNet`` it picks ``"layer4.0.bn3"``; name the points when the place matters.
    Blocks already in the network (the registered blocks of :func:`monai_srb.blocks.factory.is_block`: SRBs,
    non-local and A2 blocks, e.g. ``SRBUNet``'s, and any of ``register_block``) and their insides are never
    candidates. A network that already holds an :class:`InsertedBlock` is refused with ``points=None``:
    a second call, e.g. a re-run notebook cell, would silently stack a second block; name the points to add
    blocks on purpose. A named point inside a block is refused whatever ``points`` is.

    Args:
        network: the network to modify; it is modified in place and returned.
        points: dotted submodule names as listed by ``network.named_modules()`` (e.g. ``"layer4"``,
            ``"features.denseblock4"``), one name or several; ``None`` for the deepest feature map; an empty
            sequence inserts nothing.
        block: a block name of :data:`monai_srb.blocks.factory.BLOCK_TYPES` (``"srb_fft"``, ``"srb_aom"``,
            ``"srb_dct"``, ``"nonlocal"``, ``"double_attention"``, or one of ``register_block``), see
            :func:`monai_srb.blocks.factory.make_block`.
        position: ``"before"`` (the block sees the submodule's first input) or ``"after"`` (its output).
        example_input: a tensor the network accepts, in shape (batch, in_channels, *spatial) with 2 or 3
            spatial dims, or such a shape (the probe then runs zeros, leaving the random state untouched).
            With ``"srb_aom"`` the network then only takes inputs of this spatial size.
        block_args: further constructor arguments of the block (``reduction``, ``norm``, ...). A
            ``spatial_size`` here replaces the probed size of every point: ``spatial_size=None`` lets
            SRB_F / SRB_DCT keep their default spectral grid.

    Returns:
        ``network``, with the blocks inserted.

    Raises:
        ValueError: on a bad ``position`` or ``block``; a missing or malformed ``example_input``; a point that
            is not a submodule of ``network``, or is named twice; a point whose probed input/output is not
            a (batch, channels, *spatial) tensor with ``example_input.ndim - 2`` spatial dims, differs
            between calls, or was never called; a point inside a block (an inserted block's ``block``, an
            SRB, a non-local or A2 block); ``points=None`` when no submodule sees such a map, or when
            ``network`` already holds an :class:`InsertedBlock` (``insert_blocks`` called twice).
    """
    position = look_up_option(position, POSITIONS)
    block = look_up_option(block, block_names())
    records = _find_points(network, points, position, example_input)
    _wrap(network, _build_blocks(records, block, block_args), position)
    return network
