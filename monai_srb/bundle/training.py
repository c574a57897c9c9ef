"""
What a bundle's trainer runs with: the network its engines call, compiled or not (:func:`compiled_network`), the
classification loss (:func:`classification_loss`), and the stop at the first NaN loss (:func:`stop_on_nan_loss`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import TerminateOnNan
from monai.data import MetaTensor
from monai.handlers import from_engine
from monai.utils import look_up_option

from monai_srb.data import positive_weights
from monai_srb.metrics.classification import CLASSIFICATION_TASKS

__all__ = ["CompiledOnPlainTensors", "classification_loss", "compiled_network", "stop_on_nan_loss"]


def compiled_network(
    network: torch.nn.Module, enabled: bool, compile_kwargs: Mapping[str, Any] | None = None
) -> torch.nn.Module:
    """
    The network a bundle's engines run: ``torch.compile(network, **compile_kwargs)`` when ``enabled`` (the ``compile``
    override), else ``network`` itself. The compiled module shares ``network``'s parameters, and the checkpoint
    savers keep saving ``network``, so a checkpoint of a compiled run has no ``_orig_mod.`` prefixes and loads into
    an eager network, and the other way round.

    Not MONAI's ``SupervisedTrainer(compile=True)``: on MONAI 1.6 it rebuilds a ``MetaTensor`` from the collated
    batch's metadata after each iteration, and with a batch of more than one image ``is_no_channel`` then calls
    ``bool()`` on a tensor of one value per image ("Boolean value of Tensor with more than one value is
    ambiguous"), so every bundle training with ``compile=True`` and ``batch_size`` > 1 failed in its first step.

    Args:
        network: the bundle's network (inside ``DistributedDataParallel`` under DDP).
        enabled: whether to compile.
        compile_kwargs: ``torch.compile``'s keyword arguments, e.g. ``{"dynamic": true}``.
    """
    if not enabled:
        return network
    return CompiledOnPlainTensors(torch.compile(network, **dict(compile_kwargs or {})))


class CompiledOnPlainTensors(torch.nn.Module):
    """
    Runs a compiled network on the plain tensor of a ``MetaTensor`` input and gives the output the input's metadata,
    as the eager network's output has it. Dynamo cannot trace ``MetaTensor.__torch_function__``: given the batch a
    MONAI data loader yields, the compiled SRBUNet of the 2D bundle broke into 47 graphs (a break at every op that
    touches metadata), so ``--compile true`` compiled almost nothing. On plain tensors it is 2 graphs, one for
    training and one for evaluation.

    Args:
        compiled: the network ``torch.compile`` returned (its ``_orig_mod`` is the eager one).
    """

    def __init__(self, compiled: torch.nn.Module) -> None:
        super().__init__()
        self.compiled = compiled

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(x, MetaTensor):
            return self.compiled(x, *args, **kwargs)
        out = self.compiled(x.as_tensor(), *args, **kwargs)
        if not isinstance(out, torch.Tensor):
            return out
        out = MetaTensor(out)
        out.copy_meta_from(x, copy_attr=True)
        return out


def classification_loss(
    task: str, train_data: Sequence[Mapping[str, Any]], weighted: bool, device: torch.device | str
) -> torch.nn.Module:
    """
    The classification bundle's loss: for ``"multi-label"`` the BCE with logits, weighted per class by
    :func:`monai_srb.data.positive_weights` of the training labels when ``weighted`` (the paper's weighted
    cross-entropy), for ``"multi-class"`` the cross-entropy.

    Args:
        task: ``"multi-label"`` (ChestX-ray14) or ``"multi-class"`` (e.g. DermaMNIST).
        train_data: the training data list, whose ``"label"`` items weigh the classes.
        weighted: whether the multi-label loss weighs positives by the class ratios.
        device: where the weights go (the network's device).

    Raises:
        ValueError: for another ``task``.
    """
    task = look_up_option(task, CLASSIFICATION_TASKS)
    if task == "multi-class":
        return torch.nn.CrossEntropyLoss()
    return torch.nn.BCEWithLogitsLoss(pos_weight=positive_weights(train_data).to(device) if weighted else None)


def stop_on_nan_loss(trainer: Engine) -> Engine:
    """
    Stop ``trainer`` at the first iteration whose loss is NaN or infinite (Ignite's ``TerminateOnNan`` on the
    ``"loss"`` of MONAI's engine output), after the iteration's other handlers. Returns ``trainer``.

    Args:
        trainer: a MONAI ``SupervisedTrainer``.
    """
    trainer.add_event_handler(Events.ITERATION_COMPLETED, TerminateOnNan(from_engine(["loss"], first=True)))
    return trainer
