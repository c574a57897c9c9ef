"""Fixtures every test gets."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """
    Under ``pytest -n N`` (pytest-xdist) each worker gets an equal share of the cores for torch's intra-op threads,
    and so do the bundle runs and grid jobs it starts as subprocesses (``OMP_NUM_THREADS``): N workers of as many
    threads as cores would each spin on every core.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        import torch

        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _restore_excepthook() -> Iterator[None]:
    """
    Put back the :func:`sys.excepthook` a test started with: ``torch.distributed.init_process_group`` (the gloo
    tests that run a bundle in-process) wraps it to prefix ``[rank0]:`` and ``destroy_process_group`` leaves it so,
    and a bundle check's failure installs the hook of ``monai_srb.bundle.overrides``; a later test reads what the
    hook prints.
    """
    hook = sys.excepthook
    yield
    sys.excepthook = hook
