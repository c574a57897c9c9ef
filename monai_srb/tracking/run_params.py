"""
What an MLflow run records about its configuration: :class:`RunParams`, which a bundle builds in its config (the
tracked params with the values the run used, the config files, the metadata) and, given the raw config after
overrides, every override (:func:`config_overrides`); and :func:`describe_network`, the network actually built,
read from the network.

Why the bundle hands these over instead of the handler finding the running parser: ``monai.bundle`` gives a config
no handle on its own parser (an expression gets none; a ``%`` macro copies raw content, whose nested ``_target_``
components are then built when referenced), and ``monai.bundle run`` merges the command-line overrides into the
parser and keeps them nowhere else. So a ``monai.bundle run`` records what the overrides did (the tracked values,
the network built) and which files ran, and a Python caller that holds the workflow can add the overrides
themselves (``RunParams.config``).

No machine paths: a param naming a file or folder (``output_dir``, ``resume_from``, ``ckpt_path``) is recorded
relative to the bundle root, or left out when it lies outside it (:func:`portable_value`); the data is the run's
dataset input (:class:`~monai_srb.tracking.run_data.RunData`), not a path.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser
from monai.bundle.utils import DEFAULT_MLFLOW_SETTINGS, MACRO_KEY
from monai.utils import ensure_tuple
from torch import nn

from monai_srb.blocks import block_name, is_block
from monai_srb.nets.insertion import InsertedBlock

__all__ = ["RunParams", "config_overrides", "describe_network", "param_value", "portable_value", "unwrap"]

# How the ids of nested config items are written on the command line (`--network_def#srb_after`).
_ID_SEP = "#"
# MLflow accepts 6000 characters per param value; long lists or expressions carry no information worth it.
_MAX_PARAM_LEN = 500
# URI schemes whose rest is a local path (a tracking store, a file).
_LOCAL_SCHEMES = ("sqlite:///", "file://")


class RunParams:
    """
    What a bundle run records about its configuration, built in the bundle config and given to
    :class:`SRBMLFlowHandler` as ``run_params``::

        "run_params": {"_target_": "monai_srb.tracking.RunParams", "config_files": "@config_files",
                       "tracked": "@tracked_params", "meta": "@_meta_", "bundle_root": "@bundle_root"},
        "mlflow_handler": {"_target_": "SRBMLFlowHandler", "run_params": "@run_params", ...}

    Without ``config`` (``python -m monai.bundle run``, which gives the config no handle on its parser) the run
    records the tracked values it used (:meth:`params`), the network the handler describes, and the config files as
    filed (:meth:`files`). With ``config``, the raw config after overrides, it also records every override, nested
    ones included (:func:`config_overrides`), and the merged config itself. A Python caller that holds the workflow
    sets it before the run starts (the handler reads it then)::

        workflow = ConfigWorkflow(config_file=..., workflow_type="train", **overrides)
        workflow.initialize()
        workflow.parser.get_parsed_content("run_params").config = workflow.parser.get()
        workflow.run()

    Args:
        config_files: the bundle config file(s) of the run, as ``monai.bundle run`` takes them (a list, one path,
            or paths joined by commas).
        tracked: id -> value this run uses (the bundles' ``tracked_params``: the parser resolves its references).
        meta: the bundle's metadata (``"@_meta_"``): its ``name`` and ``version`` tag the run; ``None`` takes the
            ``_meta_`` of ``config``.
        config: the raw config after overrides (``ConfigParser.get()``, ``ConfigWorkflow(...).parser.get()``);
            a copy is kept.
        bundle_root: the bundle's folder: a param that names a path inside it is recorded relative to it, one
            outside it (or any absolute path, without ``bundle_root``) is left out (:func:`portable_value`).
    """

    def __init__(
        self,
        config_files: str | Sequence[str] | None = None,
        tracked: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        bundle_root: str | os.PathLike | None = None,
    ) -> None:
        self.config_files = config_files
        self.tracked = dict(tracked or {})
        self._meta = None if meta is None else dict(meta)
        self.config = config
        self.bundle_root = None if bundle_root is None else str(bundle_root)

    @property
    def config(self) -> dict[str, Any] | None:
        """The raw config after overrides (a copy taken when set), or ``None``."""
        return self._config

    @config.setter
    def config(self, config: Mapping[str, Any] | None) -> None:
        self._config = None if config is None else copy.deepcopy(dict(config))

    @property
    def meta(self) -> dict[str, Any]:
        """The bundle's metadata: ``meta``, else the ``_meta_`` of :attr:`config`, else ``{}``."""
        if self._meta is not None:
            return self._meta
        return dict((self._config or {}).get(ConfigParser.meta_key) or {})

    def files(self) -> list[str]:
        """The config files of the run, in the order they are merged."""
        files = self.config_files
        if files is None:
            return []
        if isinstance(files, str) and not Path(files).is_file() and "," in files:
            files = files.split(",")  # as ConfigParser.load_config_files reads a comma-joined string
        return [str(f) for f in ensure_tuple(files)]

    def params(self) -> dict[str, str]:
        """
        The run's MLflow params: the tracked values, and with :attr:`config` every id the run overrides
        (``network_def.srb_after`` for ``--network_def#srb_after '[]'``: MLflow names take ``.`` where the config
        has ``#``) with its raw override, unless a tracked value has that name. Paths are relative to
        ``bundle_root``; a machine path outside it is left out (:func:`portable_value`).
        """
        found = {str(name): param_value(value) for name, value in self.tracked.items()}
        if self._config is not None:
            for name, value in config_overrides(self.files(), self._config).items():
                found.setdefault(name.replace(_ID_SEP, "."), param_value(value))
        portable = {name: portable_value(value, self.bundle_root) for name, value in found.items()}
        return {name: value for name, value in portable.items() if value is not None}


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


def param_value(value: Any) -> str:
    """
    ``value`` as an MLflow param value: its ``str``, cut to 500 characters (MLflow takes 6000; longer lists and
    expressions carry nothing worth it).

    Args:
        value: the value.
    """
    return str(value)[:_MAX_PARAM_LEN]


def portable_value(value: str, bundle_root: str | os.PathLike | None) -> str | None:
    """
    A param value without this machine's paths: a path inside ``bundle_root`` relative to it (``runs/models/model.pt``,
    also inside a ``sqlite:///`` or ``file://`` URI), any other absolute path ``None`` (left out: it names a
    folder of this machine, e.g. a grid run's ``/tmp/...`` output or the data's mount), everything else as it is.
    A relative path given from the working directory counts as a path when it lies inside ``bundle_root``.

    Args:
        value: the param value (:func:`param_value`).
        bundle_root: the bundle's folder; ``None``: every absolute path is left out.
    """
    scheme = next((s for s in _LOCAL_SCHEMES if value.startswith(s)), "")
    if not scheme and "://" in value:
        return value  # a server's URI (http://host:port)
    path = value[len(scheme) :]
    root = None if bundle_root is None else Path(bundle_root).resolve()
    if not os.path.isabs(path):
        if root is None or not ("/" in path or os.sep in path):
            return value  # a name, a number, a list: not a path
        try:
            return scheme + Path(path).resolve().relative_to(root).as_posix()
        except (ValueError, OSError):
            return value  # relative, but not into the bundle: no machine's path either
    if root is None:
        return None
    try:
        return scheme + Path(path).resolve().relative_to(root).as_posix()
    except (ValueError, OSError):
        return None


def config_params(config_files: str | Sequence[str], tracked: Mapping[str, Any] | None = None) -> dict[str, str]:
    """
    Deprecated (for configs that call ``monai_srb.handlers.config_params``; removed in the next release): the
    params of ``RunParams(config_files, tracked)``, the tracked values. It no longer finds the running parser up the
    call stack, so it no longer adds the overrides: give the handler a :class:`RunParams` as ``run_params``.

    Args:
        config_files: the bundle config file(s) of the run.
        tracked: id -> value actually used.
    """
    return RunParams(config_files, tracked).params()


_NORMS = (
    ((nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d), "instance"),
    ((nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm), "batch"),
    ((nn.GroupNorm,), "group"),
    ((nn.LayerNorm,), "layer"),
)


def unwrap(network: nn.Module) -> nn.Module:
    """
    The network inside ``DistributedDataParallel``, or ``network`` itself.

    Args:
        network: the network, wrapped or not.
    """
    return network.module if isinstance(network, nn.parallel.DistributedDataParallel) else network


def describe_network(network: nn.Module) -> dict[str, Any]:
    """
    What was built, read from the network itself (so nested overrides such as ``--network_def#srb_after '[]'``
    or ``--network_def#unet_args ...`` show): its class, the blocks it holds (``srb_count``, their
    ``srb_positions`` and ``block`` names, ``"none"`` without blocks) and the ``norm`` of its own layers
    (``instance``, ``batch``, ``group``, ``layer`` or ``none``; the blocks' inner norms do not count).

    Args:
        network: the network, also inside ``DistributedDataParallel``.
    """
    network = unwrap(network)
    blocks: dict[str, nn.Module] = {}  # position -> block
    block_paths: list[str] = []  # the blocks' module names: their inner layers are not the network's

    def inside_block(name: str) -> bool:
        return any(not b or name == b or name.startswith(f"{b}.") for b in block_paths)

    for name, module in network.named_modules():
        if inside_block(name):
            continue
        if isinstance(module, InsertedBlock):
            blocks[f"{module.position}_{module.point or name}"] = module.block
            block_paths.append(f"{name}.block" if name else "block")
        elif is_block(module):
            blocks[name.rsplit(".", 1)[-1].removeprefix("srb_") or "network"] = module
            block_paths.append(name)
    norm = "none"
    for name, module in network.named_modules():
        found = [label for types, label in _NORMS if isinstance(module, types)]
        if found and not inside_block(name):
            norm = found[0]
            break
    names = sorted({block_name(b) for b in blocks.values()})
    return {
        "network": type(network).__name__,
        "srb_count": len(blocks),
        "srb_positions": list(blocks),
        "block": ",".join(names) or "none",
        "norm": norm,
    }
