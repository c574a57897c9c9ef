"""Fixtures every test gets."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


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
