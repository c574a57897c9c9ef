"""A training run's random states as one checkpoint entry: a resumed run draws what an uninterrupted one would."""

from __future__ import annotations

import random
import types
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["RandomStates"]


def _numpy_state(state: tuple) -> dict[str, Any]:
    # torch.load(weights_only=True) refuses NumPy arrays: the MT19937 key travels as a tensor.
    name, key, pos, has_gauss, cached_gaussian = state
    return {"name": name, "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)}


def _numpy_tuple(state: Mapping[str, Any]) -> tuple:
    key = state["key"].cpu().numpy().astype(np.uint32)
    return state["name"], key, state["pos"], state["has_gauss"], state["cached_gaussian"]


_OPAQUE = (str, bytes, Mapping, torch.Tensor, np.ndarray, torch.nn.Module, type, types.ModuleType,
           types.FunctionType, types.BuiltinFunctionType, types.MethodType)


def _collect(obj: Any, seen: set[int], randomizables: list[Any], generators: list[torch.Generator]) -> None:
    """Every MONAI ``Randomizable`` (with an ``R``) and ``torch.Generator`` reachable from ``obj``, in a fixed order."""
    if obj is None or id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, torch.Generator):
        generators.append(obj)
        return
    if isinstance(obj, _OPAQUE):
        return
    if isinstance(obj, (list, tuple)):
        for item in obj:
            _collect(item, seen, randomizables, generators)
        return
    if isinstance(getattr(obj, "R", None), np.random.RandomState):
        randomizables.append(obj)
    # Compose is Randomizable and holds more Randomizables: keep walking below it, as MONAI's set_rnd does not.
    for name, value in getattr(obj, "__dict__", {}).items():
        if not name.startswith("__"):
            _collect(value, seen, randomizables, generators)


class RandomStates:
    """
    The random number generators a training run draws from, as a stateful object for a checkpoint's
    ``save_dict`` / ``load_dict``: Python's ``random``, NumPy's global state, torch's CPU (and CUDA)
    generator, and, found by walking ``objects``, the ``RandomState`` ``R`` of every MONAI random
    transform (``Compose`` and each ``RandFlipd`` ...; :func:`monai.utils.set_determinism` does not reach
    them: MONAI's ``DataLoader`` seeds them once, at construction) and every ``torch.Generator`` (a
    ``DataLoader``'s or its sampler's ``generator``, when given). A ``RandomSampler`` without a generator
    draws its permutation seed from torch's global generator when an epoch's iterator is made, and so
    do the workers' seeds, so the global state covers them.

    Saved at the end of an epoch and restored when a run resumes, the next epoch shuffles, augments and
    drops out exactly as in a run that was never interrupted.

    Args:
        objects: an object, or a list of them, whose random transforms and generators are saved too,
            e.g. the training ``DataLoader`` (its dataset's transforms are reached through it).

    Raises:
        ValueError: on load, when the checkpoint holds a different number of transform states or
            generators than ``objects`` have now (the transforms changed since the checkpoint).
    """

    def __init__(self, objects: Any = None) -> None:
        self.objects = objects

    def _members(self) -> tuple[list[Any], list[torch.Generator]]:
        randomizables: list[Any] = []
        generators: list[torch.Generator] = []
        _collect(self.objects, set(), randomizables, generators)
        return randomizables, generators

    def state_dict(self) -> dict[str, Any]:
        randomizables, generators = self._members()
        return {
            "python": random.getstate(),
            "numpy": _numpy_state(np.random.get_state()),
            "torch": torch.get_rng_state(),
            "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "transforms": [_numpy_state(r.R.get_state()) for r in randomizables],
            "generators": [g.get_state() for g in generators],
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        randomizables, generators = self._members()
        for key, here in (("transforms", randomizables), ("generators", generators)):
            if len(state_dict[key]) != len(here):
                raise ValueError(
                    f"the checkpoint holds {len(state_dict[key])} random {key} states, this run has {len(here)}: "
                    "the training transforms or data loader changed since the checkpoint was written."
                )
        version, internal, gauss_next = state_dict["python"]
        random.setstate((version, tuple(internal), gauss_next))
        np.random.set_state(_numpy_tuple(state_dict["numpy"]))
        # map_location may have moved the states to a GPU; generators take CPU byte tensors.
        torch.set_rng_state(state_dict["torch"].cpu())
        if torch.cuda.is_available():
            for device, state in enumerate(state_dict["torch_cuda"][: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(state.cpu(), device)
        for transform, state in zip(randomizables, state_dict["transforms"]):
            transform.R.set_state(_numpy_tuple(state))
        for generator, state in zip(generators, state_dict["generators"]):
            generator.set_state(state.cpu())
