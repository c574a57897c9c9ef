"""
The checks a bundle config runs on its overrides first thing in ``initialize``, before it builds anything.

``python -m monai.bundle run`` hands command-line values over through python-fire, which passes
``--amp false`` as the string ``'false'`` (true by truthiness) and ``--image_size "[64, 64]"`` as a list.
The configs therefore read every boolean id through :func:`as_bool` and check every size, number, path and
choice id (:func:`check_size`, :func:`check_number`, :func:`check_fold`, :func:`check_path`,
:func:`check_choice`), so a bad override stops the run with its name before any data is written or any
network built.

MONAI re-raises whatever a config item raises as a ``RuntimeError`` naming the item ("Failed to instantiate
component 'monai_srb.bundle.overrides.check_size' ..."), so the last line of the traceback would name the check,
not the override. The checks' errors are therefore marked, and the first one raised installs an exception hook
(:func:`sys.excepthook`, the previous one kept for every other exception) that prints a marked error found in
the chain of an uncaught exception by itself, with its own traceback: its message, naming the override, its
value and what is expected, is the last line a user of ``python -m monai.bundle run`` sees. The refusal of
:class:`~monai_srb.bundle.run_dir.OutputDirLock` is marked the same way.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from numbers import Integral, Real
from types import TracebackType
from typing import Any, TypeVar

from monai.utils import str2bool

from monai_srb.utils.sizes import check_min_size, check_multiple_of, check_spatial_size

__all__ = [
    "EVALUATE_SPLITS",
    "as_bool",
    "as_bools",
    "check_choice",
    "check_evaluate_split",
    "check_fold",
    "check_number",
    "check_path",
    "check_size",
]

EVALUATE_SPLITS = ("val", "test", "all")

_Error = TypeVar("_Error", bound=BaseException)
# the attribute marking an error for :func:`_excepthook`
_SHOWN_LAST = "_monai_srb_shown_last"
# the hook :func:`_excepthook` hands every other exception to: the one in place when it was installed
_previous_excepthook = sys.excepthook
# set while :func:`_excepthook` runs: a hook installed after it that calls it back (``torch.distributed``'s
# ``init_process_group`` wraps whatever hook is in place to prefix ``[rank0]:``) then reaches Python's own
_in_excepthook = False


def _excepthook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
    """
    :func:`sys.excepthook` while a check's error may be uncaught: an uncaught exception whose chain holds a marked
    error (:func:`_shown_last`) is printed as that error alone, with its own traceback (from the MONAI frame that
    caught it to the ``raise``); any other exception as the previous hook would.
    Called again while it runs (a hook wrapping it was installed under it, which it wrapped in turn), it prints
    with :func:`sys.__excepthook__` instead of going round.
    """
    global _in_excepthook
    if _in_excepthook:
        sys.__excepthook__(kind, error, tb)
        return
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if getattr(cause, _SHOWN_LAST, False):
            kind, error, tb = type(cause), cause, cause.__traceback__
            break
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    _in_excepthook = True
    try:
        _previous_excepthook(kind, error, tb)
    finally:
        _in_excepthook = False


def _shown_last(error: _Error) -> _Error:
    """
    Mark ``error`` as the one to print when it ends the program, even wrapped by MONAI (see the module's docstring),
    and install :func:`_excepthook`, once, keeping the hook in place as the one for other exceptions. Returns
    ``error``.
    """
    global _previous_excepthook
    setattr(error, _SHOWN_LAST, True)
    if sys.excepthook is not _excepthook:
        _previous_excepthook = sys.excepthook
        sys.excepthook = _excepthook
    return error


def as_bool(value: Any, name: str) -> bool:
    """
    The boolean a bundle id means: ``True``/``False``, the integers 1/0, or a string that
    :func:`monai.utils.str2bool` reads (true/false, 1/0, yes/no, t/f, y/n in any case: what a command line passes).

    Args:
        value: the id's value, as set in the config or overridden on the command line.
        name: the id, named in the error.

    Raises:
        ValueError: for any other value, e.g. ``'maybe'``, ``2`` or ``None``.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, Integral) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        try:  # MONAI's: also t/f and y/n
            return str2bool(value.strip())
        except ValueError:
            pass
    raise _shown_last(ValueError(
        f"override {name!r} must be a boolean (true/false, 1/0, yes/no in any case), "
        f"got {value!r} ({type(value).__name__})."
    ))


def as_bools(**values: Any) -> dict[str, bool]:
    """``{id: as_bool(value, id)}`` for each keyword: one place in a config that parses all its boolean ids."""
    return {name: as_bool(value, name) for name, value in values.items()}


def check_size(
    value: Any, name: str, spatial_dims: int | None = None, multiple_of: int = 1, minimum: int = 1
) -> int | tuple[int, ...]:
    """
    Check a spatial size override and return it (an int, or a tuple of ``spatial_dims`` ints).

    Args:
        value: the id's value.
        name: the id, named in the error.
        spatial_dims: ``None``: the size must be one int (an id used as an image side, e.g. ``image_size``);
            otherwise one int or ``spatial_dims`` ints (e.g. a 3D ``patch_size``).
        multiple_of: every side must be a multiple of this (16 for a U-Net's four max-poolings).
        minimum: the smallest side accepted.

    Raises:
        ValueError: for a string, a float, a bool, a list where one int is expected, a list of another
            length, or a side below ``minimum`` or not a multiple of ``multiple_of``.
    """
    expected = "a positive integer" if spatial_dims is None else f"a positive integer or {spatial_dims} of them"
    if minimum > 1:
        expected += f", at least {minimum}"
    if multiple_of > 1:
        expected += f", each a multiple of {multiple_of}"
    several = spatial_dims is not None and isinstance(value, (list, tuple))
    try:  # the shared size rules; the message names the override and everything it must be at once
        if spatial_dims is None and isinstance(value, (list, tuple)):
            raise ValueError("one int expected")
        sides = check_spatial_size(value, spatial_dims or 1, name)
        check_min_size(sides, minimum, name)
        check_multiple_of(sides, multiple_of, name)
    except ValueError:
        raise _shown_last(ValueError(
            f"override {name!r} must be {expected}; got {value!r} ({type(value).__name__}).")) from None
    return tuple(sides) if several else sides[0]


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """
    Check that an override is one of ``choices`` and return it.

    Args:
        value: the id's value.
        name: the id, named in the error.
        choices: the accepted values.

    Raises:
        ValueError: for any other value, naming it and the choices.
    """
    if not isinstance(value, str) or value not in choices:
        raise _shown_last(ValueError(
            f"override {name!r} must be one of {', '.join(map(repr, choices))}; got {value!r} ({type(value).__name__})."
        ))
    return value


def check_number(
    value: Any,
    name: str,
    integer: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    below: float | None = None,
    optional: bool = False,
) -> int | float | None:
    """
    Check a numeric override and return it (an ``int`` when ``integer``, else a ``float``).

    Args:
        value: the id's value.
        name: the id, named in the error.
        integer: whether the value must be an integer (``2.0`` is refused: a count given as a float is a typo
            more often than not).
        minimum: the smallest value accepted.
        maximum: the largest value accepted.
        above: the value must be greater than this (e.g. 0 for a learning rate).
        below: the value must be less than this (e.g. 1 for a fraction).
        optional: whether ``None`` (``null`` in the config) is accepted, and returned.

    Raises:
        ValueError: for a string, a bool, a NaN or infinity, a float where an integer is expected, or a value out of
            the bounds, naming the override, its value and what is expected
            (``override 'batch_size' must be an integer >= 1; got 0 (int).``).
    """
    if optional and value is None:
        return None
    bounds = [(">=", minimum), ("<=", maximum), (">", above), ("<", below)]
    expected = ("an integer" if integer else "a number") + "".join(
        f"{' and' if i else ''} {op} {bound}" for i, (op, bound) in enumerate(b for b in bounds if b[1] is not None)
    )
    kind = Integral if integer else Real
    fits = (
        isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
        and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
        and (above is None or value > above) and (below is None or value < below)
    )
    if not fits:
        raise _shown_last(ValueError(
            f"override {name!r} must be {expected}{', or null' if optional else ''}; "
            f"got {value!r} ({type(value).__name__})."
        ))
    return int(value) if integer else float(value)


def check_fold(fold: Any, num_folds: Any) -> int | None:
    """
    Check the ``fold`` and ``num_folds`` overrides of a cross-validation and return ``fold``.

    Args:
        fold: the validation fold, an integer in ``[0, num_folds)``, or ``None`` for a split by fraction.
        num_folds: the number of folds, an integer >= 2.

    Raises:
        ValueError: for a bad ``num_folds``, or a ``fold`` that is not one of its folds, naming the value.
    """
    folds = check_number(num_folds, "num_folds", integer=True, minimum=2)
    return check_number(fold, "fold", integer=True, minimum=0, maximum=folds - 1, optional=True)


def check_path(value: Any, name: str, file_suffixes: Sequence[str] = (), optional: bool = True) -> str | None:
    """
    Check that an override names an existing folder (or a file with one of ``file_suffixes``) and return it.

    Args:
        value: the id's value.
        name: the id, named in the error.
        file_suffixes: the suffixes of the files accepted besides a folder, e.g. ``[".npz"]``; none: a folder only.
        optional: whether ``None`` (``null``: e.g. the synthetic set for ``dataset_dir``) is accepted, and returned.

    Raises:
        ValueError: for a value that is not a path, or a path that does not exist or is another kind of file,
            naming the override and the path.
    """
    if optional and value is None:
        return None
    expected = "an existing folder" + "".join(f" or {suffix} file" for suffix in file_suffixes)
    expected += ", or null" if optional else ""
    if not isinstance(value, (str, os.PathLike)):
        raise _shown_last(ValueError(f"override {name!r} must be {expected}; got {value!r} ({type(value).__name__})."))
    path = os.fspath(value)
    if os.path.isdir(path) or (os.path.isfile(path) and path.endswith(tuple(file_suffixes))):
        return path
    found = "does not exist" if not os.path.exists(path) else "is another file" if file_suffixes else "is not a folder"
    raise _shown_last(ValueError(f"override {name!r} must be {expected}; got {path!r}, which {found}."))


def check_evaluate_split(value: Any) -> str:
    """
    Check the ``evaluate_split`` override (``"val"``, ``"test"`` or ``"all"``, :data:`EVALUATE_SPLITS`) and return it.

    Raises:
        ValueError: for any other value, naming it and the choices.
    """
    return check_choice(value, "evaluate_split", EVALUATE_SPLITS)
