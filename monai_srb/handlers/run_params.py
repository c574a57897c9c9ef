"""
What an MLflow run records about itself: the bundle's tracked params with the values the run used, every
command-line override (nested ones included), and the network actually built, read from the network.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from monai.bundle import ConfigParser
from monai.bundle.utils import DEFAULT_MLFLOW_SETTINGS, MACRO_KEY
from torch import nn

from monai_srb.blocks import DoubleAttentionBlock, NonLocalBlock, SpectralResidualBlock
from monai_srb.nets.insertion import InsertedBlock
from monai_srb.spectral.registry import registered_name

__all__ = ["config_overrides", "config_params", "describe_network"]

# How the ids of nested config items are written on the command line (`--network_def#srb_after`).
_ID_SEP = "#"
# MLflow accepts 6000 characters per param value; long lists or expressions carry no information worth it.
_MAX_PARAM_LEN = 500


def _running_parser() -> ConfigParser | None:
    """
    The :class:`monai.bundle.ConfigParser` whose expression or component is being evaluated up the call stack,
    or ``None`` outside a bundle. ``monai.bundle`` gives a config no handle on its own parser, and the
    command-line overrides are merged into it and kept nowhere else.
    """
    frame = inspect.currentframe()
    try:
        while frame is not None:
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, ConfigParser):
                return candidate
            frame = frame.f_back
    finally:
        del frame
    return None


def config_overrides(config_files: str | Sequence[str], config: Mapping[str, Any]) -> dict[str, Any]:
    """
    The ids of ``config`` whose raw content differs from the merged ``config_files``: the overrides of a run,
    nested ones included (``{"network_def#srb_after": []}`` for ``--network_def#srb_after '[]'``; an item
    appended to a list is ``<list id>#<index>``). ``_meta_`` and what ``--tracking mlflow`` patches in
    (MONAI's default tracking settings, ``save_execute_config``) are left out.

    Args:
        config_files: the bundle config file(s) of the run, merged as ``monai.bundle run`` merges them.
        config: the run's raw config after overrides (``ConfigParser.get()``), macros resolved.
    """
    base = ConfigParser()
    base.read_config(config_files)
    raw = copy.deepcopy(base.get())  # before macros: a `%` copy of an overridden id is not an override of its own
    base.parse()  # resolves `%` macros and relative ids as the running parser did
    found: dict[str, Any] = {}

    def diff(ran: Any, filed: Any, unparsed: Any, prefix: str) -> None:
        if isinstance(unparsed, str) and unparsed.startswith(MACRO_KEY):
            return  # the id the macro copies is compared where it is defined
        if isinstance(ran, Mapping) and isinstance(filed, Mapping):
            for key, value in ran.items():
                sub = f"{prefix}{_ID_SEP}{key}" if prefix else str(key)
                if key in filed:
                    diff(value, filed[key], unparsed.get(key) if isinstance(unparsed, Mapping) else None, sub)
                else:
                    found[sub] = value
        elif isinstance(ran, list) and isinstance(filed, list) and len(ran) >= len(filed):
            for i, value in enumerate(ran):
                if i < len(filed):
                    item = unparsed[i] if isinstance(unparsed, list) and i < len(unparsed) else None
                    diff(value, filed[i], item, f"{prefix}{_ID_SEP}{i}")
                else:
                    found[f"{prefix}{_ID_SEP}{i}"] = value
        elif not _equal(ran, filed):
            found[prefix] = ran

    diff(dict(config), base.get(), raw, "")
    patched = [v for v in DEFAULT_MLFLOW_SETTINGS["configs"].values() if isinstance(v, Mapping)]
    skipped = (ConfigParser.meta_key, "save_execute_config")
    return {
        k: v for k, v in found.items()
        if k.split(_ID_SEP)[0] not in skipped and not any(_equal(v, p) for p in patched)
    }


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (ValueError, TypeError, RuntimeError):  # arrays and tensors compare elementwise
        return a is b


def _param_value(value: Any) -> str:
    return str(value)[:_MAX_PARAM_LEN]


def config_params(config_files: str | Sequence[str], tracked: Mapping[str, Any] | None = None) -> dict[str, str]:
    """
    MLflow params of a bundle run: the tracked hyper-parameters with the values this run uses, and every id
    the run overrides (``network_def.srb_after`` for ``--network_def#srb_after '[]'``; MLflow names take
    ``.`` where the config has ``#``), with its raw override. Called from a config expression, it finds the
    running parser's merged config itself; elsewhere only ``tracked`` is returned.

    Args:
        config_files: the bundle config file(s) of the run.
        tracked: id -> value actually used, the bundle's ``tracked_params`` object (one id a line).
    """
    params = {str(name): _param_value(value) for name, value in (tracked or {}).items()}
    parser = _running_parser()
    if parser is not None:
        for name, value in config_overrides(config_files, parser.get()).items():
            params.setdefault(name.replace(_ID_SEP, "."), _param_value(value))
    return params


_NORMS = (
    ((nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d), "instance"),
    ((nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm), "batch"),
    ((nn.GroupNorm,), "group"),
    ((nn.LayerNorm,), "layer"),
)


def _unwrap(network: nn.Module) -> nn.Module:
    return network.module if isinstance(network, nn.parallel.DistributedDataParallel) else network


def _block_name(block: nn.Module) -> str:
    if isinstance(block, SpectralResidualBlock):
        return f"srb_{registered_name(block.f)}"
    return "nonlocal" if isinstance(block, NonLocalBlock) else "double_attention"


def describe_network(network: nn.Module) -> dict[str, Any]:
    """
    What was built, read from the network itself (so nested overrides such as ``--network_def#srb_after '[]'``
    or ``--network_def#unet_args ...`` show): its class, the blocks it holds (``srb_count``, their
    ``srb_positions`` and ``block`` names, ``"none"`` without blocks) and the ``norm`` of its own layers
    (``instance``, ``batch``, ``group``, ``layer`` or ``none``; the blocks' inner norms do not count).

    Args:
        network: the network, also inside ``DistributedDataParallel``.
    """
    network = _unwrap(network)
    blocks: dict[str, nn.Module] = {}  # position -> block
    block_names: list[str] = []  # the blocks' module names: their inner layers are not the network's

    def inside_block(name: str) -> bool:
        return any(not b or name == b or name.startswith(f"{b}.") for b in block_names)

    for name, module in network.named_modules():
        if inside_block(name):
            continue
        if isinstance(module, InsertedBlock):
            blocks[f"{module.position}_{module.point or name}"] = module.block
            block_names.append(f"{name}.block" if name else "block")
        elif isinstance(module, (SpectralResidualBlock, NonLocalBlock, DoubleAttentionBlock)):
            blocks[name.rsplit(".", 1)[-1].removeprefix("srb_") or "network"] = module
            block_names.append(name)
    norm = "none"
    for name, module in network.named_modules():
        found = [label for types, label in _NORMS if isinstance(module, types)]
        if found and not inside_block(name):
            norm = found[0]
            break
    names = sorted({_block_name(b) for b in blocks.values()})
    return {
        "network": type(network).__name__,
        "srb_count": len(blocks),
        "srb_positions": list(blocks),
        "block": ",".join(names) or "none",
        "norm": norm,
    }
