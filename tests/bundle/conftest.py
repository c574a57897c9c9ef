"""What the tests of the bundle checks share: an uncaught error as MONAI wraps it, and what the hook then prints."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest


def _wrapped(check: Callable[[], object], component: str) -> RuntimeError:
    """What MONAI's ``instantiate`` makes of a check's error: a RuntimeError naming the component, raised from it."""
    try:
        try:
            check()
        except Exception as e:
            raise RuntimeError(f"Failed to instantiate component '{component}'") from e
    except RuntimeError as wrapped:
        return wrapped
    raise AssertionError("the check passed")


@pytest.fixture
def monai_wrapped() -> Callable[[Callable[[], object], str], RuntimeError]:
    """``monai_wrapped(check, component)``: the error ``check()`` raises, as MONAI wraps it for ``component``."""
    return _wrapped


@pytest.fixture
def printed(capsys: pytest.CaptureFixture[str]) -> Callable[[BaseException], list[str]]:
    """``printed(error)``: the non-empty lines ``sys.excepthook`` prints for ``error`` left uncaught."""

    def lines(error: BaseException) -> list[str]:
        sys.excepthook(type(error), error, error.__traceback__)
        return [line for line in capsys.readouterr().err.splitlines() if line.strip()]

    return lines
