"""
The DDP steps of the ``multi_gpu_*`` configs: this process's device (:func:`distributed_device`), joining the
process group ``torchrun`` set up (:func:`init_distributed`) and leaving it once every rank is done
(:func:`finalize_distributed`).
"""

from __future__ import annotations

import os

import ignite.distributed as idist
import torch
import torch.distributed as dist

__all__ = ["distributed_device", "finalize_distributed", "init_distributed"]


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
