"""
What the bundle configs would otherwise write as long ``$`` expressions: where a run's data comes from (a data set
folder, or a synthetic set written by the main process only under DDP), the split a segmentation run validates on,
the classification loss, the DDP device and process group, the NaN stop, the evaluate summary and the header of the
prediction CSV. Each is a named function a config calls in one short expression or as a component, so the config
composes and Python decides.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ignite.distributed as idist
import pandas
import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from ignite.handlers import TerminateOnNan
from monai.handlers import from_engine
from monai.utils import look_up_option

from monai_srb.data import (
    group_kfold_split,
    group_split_datalist,
    kfold_split,
    positive_weights,
    split_datalist,
    subject_ids,
)

__all__ = [
    "CLASSIFICATION_TASKS",
    "classification_loss",
    "compiled_network",
    "distributed_device",
    "finalize_distributed",
    "inference_image_dir",
    "init_distributed",
    "label_prediction_columns",
    "log_evaluation",
    "resolve_data_root",
    "stop_on_nan_loss",
    "train_val_split",
]

logger = logging.getLogger(__name__)

CLASSIFICATION_TASKS = ("multi-label", "multi-class")


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def resolve_data_root(
    dataset_dir: str | os.PathLike | None,
    synthetic_data: Callable[[], str],
    synthetic_root: str,
    is_main_process: bool = True,
) -> str | os.PathLike:
    """
    The data set a run reads: ``dataset_dir`` when given, else the bundle's synthetic set. The main process writes
    it (``synthetic_data()``, which leaves a set written with the same arguments as it is and replaces one written
    with others, see :mod:`monai_srb.data.synthetic`); under DDP the other ranks wait at a barrier until it is
    written and read the same folder, so no two processes write, or remove, one file.

    Args:
        dataset_dir: the ``dataset_dir`` override, or ``None`` for the synthetic set.
        synthetic_data: writes the synthetic set and returns its folder (a bundle's ``_mode_: callable``
            component); called by the main process only, and only when ``dataset_dir`` is ``None``.
        synthetic_root: the folder ``synthetic_data`` writes, which the other ranks read.
        is_main_process: whether this process writes (rank 0 under DDP; ``True`` in a single process).
    """
    if dataset_dir is not None:
        return dataset_dir
    root = synthetic_data() if is_main_process else synthetic_root
    _barrier()
    return root


def inference_image_dir(
    input_dir: str | None, dataset_dir: str | None, synthetic_data: Callable[[], str] | None = None
) -> str | None:
    """
    The image folder a 2D segmentation inference predicts: ``input_dir`` when given, else ``<dataset_dir>/images``,
    else ``<synthetic set>/images``, written by ``synthetic_data()`` only then. Without ``synthetic_data`` that last
    case gives ``None`` (what :func:`monai_srb.data.folder_image_channels` takes for the synthetic set, which it
    need not write to know its channels).

    Args:
        input_dir: the ``input_dir`` override: a folder of images to predict.
        dataset_dir: the ``dataset_dir`` override: a data set with an ``images/`` folder.
        synthetic_data: writes the synthetic set and returns its folder, or ``None``.
    """
    if input_dir is not None:
        return input_dir
    if dataset_dir is not None:
        return os.path.join(dataset_dir, "images")
    return None if synthetic_data is None else os.path.join(synthetic_data(), "images")


def train_val_split(
    datalist: Sequence[dict[str, Any]],
    val_fraction: float,
    seed: int,
    fold: int | None = None,
    num_folds: int = 5,
    group_pattern: str | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """
    ``(train, val)`` of a segmentation run: :func:`monai_srb.data.split_datalist` by ``val_fraction``, or fold
    ``fold`` of :func:`monai_srb.data.kfold_split` when a fold is given (the published ISIC and HC18 grids). With a
    ``group_pattern`` both split by subject instead (:func:`monai_srb.data.group_split_datalist`,
    :func:`monai_srb.data.group_kfold_split`), so that no subject has images on both sides. Logs the image and
    subject counts of each part.

    Args:
        datalist: the items to split.
        val_fraction: share of the items for validation, used when ``fold`` is ``None``.
        seed: seed of the shuffle.
        fold: the validation fold in ``[0, num_folds)``, or ``None`` for a split by fraction.
        num_folds: the number of folds.
        group_pattern: ``None`` (split by image), or a regular expression whose first group names an image's
            subject in its file name (HC18: ``"^(\\d+)_"``).

    Raises:
        ValueError: as :func:`monai_srb.data.split_datalist` or :func:`monai_srb.data.kfold_split`, and, with a
            ``group_pattern``, as :func:`monai_srb.data.subject_ids` (an image whose name does not match it).
    """
    if group_pattern is None:
        if fold is None:
            train, val = split_datalist(datalist, val_fraction, seed)
        else:
            train, val = kfold_split(datalist, fold, num_folds, seed)
        logger.info("split by image: %d training and %d validation images", len(train), len(val))
        return train, val
    groups = subject_ids(datalist, group_pattern)
    if fold is None:
        train, val = group_split_datalist(datalist, groups, val_fraction, seed)
    else:
        train, val = group_kfold_split(datalist, groups, fold, num_folds, seed)
    subject = dict(zip((id(d) for d in datalist), groups))
    logger.info(
        "split by subject (group_pattern '%s'): %d training images of %d subjects, %d validation images of %d subjects",
        group_pattern, len(train), len({subject[id(d)] for d in train}), len(val), len({subject[id(d)] for d in val}),
    )
    return train, val


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
    return torch.compile(network, **dict(compile_kwargs or {}))


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


def distributed_device() -> torch.device:
    """
    The device of this DDP process: ``cuda:<LOCAL_RANK>`` (as ``torchrun`` sets it; the global rank without it)
    when CUDA is available, else the CPU.
    """
    if not torch.cuda.is_available():
        return torch.device("cpu")
    local_rank = os.environ.get("LOCAL_RANK")
    return torch.device("cuda", int(local_rank) if local_rank is not None else dist.get_rank())


def init_distributed() -> None:
    """
    Join the process group ``torchrun`` set up, once: ``nccl`` when CUDA is available, else ``gloo``.
    """
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")


def finalize_distributed() -> None:
    """
    Leave the process group :func:`init_distributed` joined, once every rank is done: a barrier first (so that a
    rank with no handlers does not exit while the main process is still scoring and saving), then Ignite's
    ``idist.finalize`` and ``destroy_process_group``.

    Under ``gloo`` the barrier is ``monitored_barrier``, not ``barrier``. Gloo's ``barrier`` keeps the collectives
    still in flight when it is called (here: the last metric ``all_gather``, whose Python tensors the caller has
    already let go) until a worker thread drops the barrier, which can be after this process has begun to exit.
    Dropping them then needs the GIL, the thread is killed, and the process aborts ("terminate called without an
    active exception"; a core dump showed ``~AsyncBarrierWork`` -> ``~AsyncAllgatherWork`` -> ``decref_pyobject``
    -> ``take_gil`` -> ``pthread_exit``). ``torchrun`` then reports the whole job failed: about one two-rank run of
    the 3D bundle in 60 on a loaded 2-core machine. ``monitored_barrier`` holds no earlier work, and it waits with
    the GIL released, so the worker threads drop theirs meanwhile.
    """
    if dist.is_initialized():
        if dist.get_backend() == dist.Backend.GLOO:
            dist.monitored_barrier()
        else:
            dist.barrier()
    idist.finalize()
    if dist.is_initialized():
        dist.destroy_process_group()


def log_evaluation(
    scored: int,
    evaluate_split: str,
    source: str | os.PathLike,
    ckpt_path: str | os.PathLike,
    eval_dir: str | os.PathLike,
    what: str = "images",
) -> None:
    """
    Log (``INFO``) what an evaluate run scored, with which checkpoint, and where its scores are.

    Args:
        scored: how many items the evaluator scored.
        evaluate_split: the split scored (``"val"``, ``"test"`` or ``"all"``).
        source: the data set scored.
        ckpt_path: the checkpoint scored.
        eval_dir: the folder the scores went to.
        what: what the items are (``"images"``, ``"volumes"``).
    """
    logger.info(
        "evaluate: scored %d %s (evaluate_split %r of %s) with %s; scores in %s",
        scored, what, evaluate_split, source, ckpt_path, eval_dir,
    )


def label_prediction_columns(prediction_file: str | os.PathLike, class_names: Sequence[str]) -> None:
    """
    Give the CSV that MONAI's ``ClassificationSaver`` writes (no header: the image, then one probability per class)
    a header row, ``image`` and the class names, and write the probabilities with 6 decimals.

    Args:
        prediction_file: the CSV, rewritten in place.
        class_names: one name per probability column, in the network's output order.
    """
    table = pandas.read_csv(prediction_file, header=None, names=["image", *class_names])
    table.to_csv(prediction_file, index=False, float_format="%.6f")
