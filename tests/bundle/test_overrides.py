"""The override checks (parsing, bounds, choices, paths) and the hook that prints a failing check's error last."""

from __future__ import annotations

import re
import sys

import pytest
import torch

from monai_srb.bundle.overrides import (
    as_bool,
    as_bools,
    check_choice,
    check_evaluate_split,
    check_fold,
    check_number,
    check_path,
    check_size,
)

# (value on the command line or in a config, boolean it means)
BOOLS = [
    (True, True), (False, False), (1, True), (0, False),
    ("true", True), ("True", True), ("TRUE", True), ("yes", True), ("Yes", True), ("1", True), (" true ", True),
    ("false", False), ("False", False), ("FALSE", False), ("no", False), ("NO", False), ("0", False),
    ("t", True), ("Y", True), ("f", False), ("n", False),  # monai.utils.str2bool's short forms
]
NOT_BOOLS = ["maybe", "", "2", "on", "off", 2, -1, 0.0, 1.5, None, [True]]


@pytest.mark.parametrize("value,expected", BOOLS, ids=[repr(v) for v, _ in BOOLS])
def test_as_bool_accepts_the_documented_spellings(value, expected):
    assert as_bool(value, "amp") is expected


@pytest.mark.parametrize("value", NOT_BOOLS, ids=[repr(v) for v in NOT_BOOLS])
def test_as_bool_rejects_anything_else_naming_the_id(value):
    message = r"override 'weighted_loss' must be a boolean .* got " + re.escape(repr(value))
    with pytest.raises(ValueError, match=message):
        as_bool(value, "weighted_loss")


def test_as_bools_names_the_bad_id():
    assert as_bools(amp="false", check_data=1) == {"amp": False, "check_data": True}
    with pytest.raises(ValueError, match="'check_data'"):
        as_bools(amp="false", check_data="maybe")


# (value, check_size keyword arguments, returned size)
GOOD_SIZES = [
    (64, {}, 64),
    (28, {}, 28),
    (32, {"multiple_of": 16, "minimum": 32}, 32),
    (64, {"spatial_dims": 3, "multiple_of": 16}, 64),
    ([32, 48, 64], {"spatial_dims": 3, "multiple_of": 16}, (32, 48, 64)),
    ((32, 32), {"spatial_dims": 2}, (32, 32)),
]
# (value, check_size keyword arguments)
BAD_SIZES = [
    ([64, 64], {}),
    ("64", {}),
    ("64x64", {}),
    (0, {}),
    (-32, {}),
    (64.0, {}),
    (True, {}),
    (None, {}),
    (40, {"multiple_of": 16}),
    (16, {"multiple_of": 16, "minimum": 32}),
    ([32, 32], {"spatial_dims": 3}),
    ([24, 32, 32], {"spatial_dims": 3, "multiple_of": 16}),
    ([32, 32, 0], {"spatial_dims": 3}),
    ([32, "32", 32], {"spatial_dims": 3}),
]


@pytest.mark.parametrize("value,kwargs,expected", GOOD_SIZES)
def test_check_size_returns_valid_sizes(value, kwargs, expected):
    assert check_size(value, "patch_size", **kwargs) == expected


@pytest.mark.parametrize("value,kwargs", BAD_SIZES, ids=[f"{v!r}-{k}" for v, k in BAD_SIZES])
def test_check_size_rejects_bad_sizes_naming_the_override(value, kwargs):
    with pytest.raises(ValueError, match=r"override 'patch_size' must be a positive integer.*got "):
        check_size(value, "patch_size", **kwargs)


def test_check_choice():
    assert check_choice("val", "evaluate_split", ("val", "all")) == "val"
    message = "override 'norm' must be one of 'batch', 'instance'; got [1] (list)."
    with pytest.raises(ValueError, match=re.escape(message)):
        check_choice([1], "norm", ("batch", "instance"))


@pytest.mark.parametrize("value", ["val", "test", "all"])
def test_check_evaluate_split_returns_a_known_split(value):
    assert check_evaluate_split(value) == value


@pytest.mark.parametrize("value", ["train", "ALL", None, ["val"]], ids=repr)
def test_check_evaluate_split_names_the_value_and_the_choices(value):
    message = f"override 'evaluate_split' must be one of 'val', 'test', 'all'; got {value!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        check_evaluate_split(value)


# (value, check_number keyword arguments, returned value)
GOOD_NUMBERS = [
    (1, {"integer": True, "minimum": 1}, 1),
    (0, {"integer": True, "minimum": 0}, 0),
    (1e-3, {"above": 0}, 0.001),
    (2, {"above": 0}, 2.0),
    (0.0, {"minimum": 0}, 0.0),
    (0.2, {"above": 0, "below": 1}, 0.2),
    (1.0, {"minimum": 0, "maximum": 1}, 1.0),
    (None, {"integer": True, "minimum": 1, "optional": True}, None),
]
# (value, check_number keyword arguments, the end of the message: what is expected and the value)
BAD_NUMBERS = [
    (0, {"integer": True, "minimum": 1}, "an integer >= 1; got 0 (int)."),
    (-1, {"integer": True, "minimum": 0}, "an integer >= 0; got -1 (int)."),
    (2.0, {"integer": True, "minimum": 1}, "an integer >= 1; got 2.0 (float)."),
    ("4", {"integer": True, "minimum": 1}, "an integer >= 1; got '4' (str)."),
    (True, {"integer": True, "minimum": 1}, "an integer >= 1; got True (bool)."),
    (None, {"integer": True, "minimum": 1}, "an integer >= 1; got None (NoneType)."),
    (0, {"integer": True, "minimum": 1, "optional": True}, "an integer >= 1, or null; got 0 (int)."),
    (0, {"above": 0}, "a number > 0; got 0 (int)."),
    (-1e-3, {"above": 0}, "a number > 0; got -0.001 (float)."),
    ("1e-3", {"above": 0}, "a number > 0; got '1e-3' (str)."),
    (float("nan"), {"above": 0}, "a number > 0; got nan (float)."),
    (float("inf"), {"above": 0}, "a number > 0; got inf (float)."),
    (1, {"above": 0, "below": 1}, "a number > 0 and < 1; got 1 (int)."),
    (0.0, {"above": 0, "below": 1}, "a number > 0 and < 1; got 0.0 (float)."),
    (1.5, {"minimum": 0, "maximum": 1}, "a number >= 0 and <= 1; got 1.5 (float)."),
]


@pytest.mark.parametrize("value,kwargs,expected", GOOD_NUMBERS, ids=[f"{v!r}-{k}" for v, k, _ in GOOD_NUMBERS])
def test_check_number_returns_valid_numbers(value, kwargs, expected):
    result = check_number(value, "lr", **kwargs)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("value,kwargs,message", BAD_NUMBERS, ids=[f"{v!r}-{k}" for v, k, _ in BAD_NUMBERS])
def test_check_number_names_the_override_the_value_and_what_is_expected(value, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(f"override 'batch_size' must be {message}")):
        check_number(value, "batch_size", **kwargs)


# (fold, num_folds, message; None: accepted)
FOLDS = [
    (None, 5, None),
    (0, 5, None),
    (4, 5, None),
    (5, 5, "override 'fold' must be an integer >= 0 and <= 4, or null; got 5 (int)."),
    (-1, 5, "override 'fold' must be an integer >= 0 and <= 4, or null; got -1 (int)."),
    ("0", 5, "override 'fold' must be an integer >= 0 and <= 4, or null; got '0' (str)."),
    (0, 1, "override 'num_folds' must be an integer >= 2; got 1 (int)."),
    (None, "5", "override 'num_folds' must be an integer >= 2; got '5' (str)."),
]


@pytest.mark.parametrize("fold,num_folds,message", FOLDS, ids=[f"{f!r}-of-{n!r}" for f, n, _ in FOLDS])
def test_check_fold_names_the_bad_fold_or_num_folds(fold, num_folds, message):
    if message is None:
        assert check_fold(fold, num_folds) == fold
    else:
        with pytest.raises(ValueError, match=re.escape(message)):
            check_fold(fold, num_folds)


# (what the path is, check_path keyword arguments, message with {path} for the path; None: accepted)
PATHS = [
    ("folder", {}, None),
    ("data.npz", {"file_suffixes": [".npz"]}, None),
    ("missing", {}, "override 'dataset_dir' must be an existing folder, or null; got '{path}', which does not exist."),
    ("data.npz", {}, "override 'dataset_dir' must be an existing folder, or null; got '{path}', which is not a"),
    ("data.csv", {"file_suffixes": [".npz"]},
     "override 'dataset_dir' must be an existing folder or .npz file, or null; got '{path}', which is another file."),
    ("missing", {"optional": False}, "override 'dataset_dir' must be an existing folder; got '{path}', which does not"),
]


@pytest.mark.parametrize("name,kwargs,message", PATHS, ids=[f"{n}-{k}" for n, k, _ in PATHS])
def test_check_path_names_the_override_and_the_path(name, kwargs, message, tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "data.npz").write_bytes(b"")
    (tmp_path / "data.csv").write_bytes(b"")
    path = str(tmp_path / name)
    if message is None:
        assert check_path(path, "dataset_dir", **kwargs) == path
    else:
        with pytest.raises(ValueError, match=re.escape(message.format(path=path))):
            check_path(path, "dataset_dir", **kwargs)


def test_check_path_accepts_null_unless_required_and_refuses_a_non_path():
    assert check_path(None, "dataset_dir") is None
    with pytest.raises(ValueError, match=re.escape("override 'dataset_dir' must be an existing folder; got None")):
        check_path(None, "dataset_dir", optional=False)
    with pytest.raises(ValueError, match=re.escape("override 'input_dir' must be an existing folder, or null; got 3")):
        check_path(3, "input_dir")


# (a failing check, its arguments, the last line printed when its error, wrapped by MONAI, ends the program)
LAST_LINES = [
    (check_number, (0, "batch_size"), {"integer": True, "minimum": 1},
     "ValueError: override 'batch_size' must be an integer >= 1; got 0 (int)."),
    (check_size, (0, "image_size"), {}, "ValueError: override 'image_size' must be a positive integer; got 0 (int)."),
    (check_choice, ("Batch", "norm", ("instance", "batch")), {},
     "ValueError: override 'norm' must be one of 'instance', 'batch'; got 'Batch' (str)."),
    (as_bool, ("maybe", "amp"), {}, "ValueError: override 'amp' must be a boolean"),
    (check_fold, (7, 5), {}, "ValueError: override 'fold' must be an integer >= 0 and <= 4, or null; got 7 (int)."),
    (check_path, ("/no/such/folder", "dataset_dir"), {}, "ValueError: override 'dataset_dir' must be an existing"),
]


@pytest.mark.parametrize("check,args,kwargs,last", LAST_LINES, ids=[row[-1].split("'")[1] for row in LAST_LINES])
def test_a_checks_error_is_the_last_line_printed_even_when_wrapped(check, args, kwargs, last, monai_wrapped, printed):
    # MONAI names the component by its module path, as a _target_ short name resolves to it
    lines = printed(monai_wrapped(lambda: check(*args, **kwargs), f"{check.__module__}.{check.__qualname__}"))
    assert lines[-1].startswith(last), lines
    assert not any("Failed to instantiate" in line for line in lines)  # MONAI's wrapper names the check, not the value
    assert lines[0] == "Traceback (most recent call last):"


def test_other_errors_are_printed_as_before(printed):
    check_number(1, "epochs", integer=True)  # the hook is installed by the first failing check; make sure it is
    with pytest.raises(ValueError) as marked:
        check_number(0, "epochs", integer=True, minimum=1)
    assert sys.excepthook is not sys.__excepthook__
    try:
        try:
            raise ValueError("not a check's")
        except ValueError as e:
            raise RuntimeError("wrapped") from e
    except RuntimeError as plain:
        lines = printed(plain)
    assert lines[-1] == "RuntimeError: wrapped" and "ValueError: not a check's" in lines
    assert marked.value is not None


def test_a_checks_error_under_torch_distributed_hook_is_printed_once_with_its_rank(tmp_path, monai_wrapped, printed):
    check_number(1, "epochs", integer=True)
    with pytest.raises(ValueError):  # installs the bundle hook, as a first failing check does
        check_number(0, "epochs", integer=True, minimum=1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    torch.distributed.destroy_process_group()  # leaves torch's "[rank0]:" hook around the bundle hook
    # the next failing check installs the bundle hook over torch's, which calls the bundle hook back
    wrapped = monai_wrapped(
        lambda: check_number(0, "batch_size", integer=True, minimum=1), "monai_srb.bundle.overrides.check_number"
    )
    lines = printed(wrapped)
    assert lines[-1] == "[rank0]: ValueError: override 'batch_size' must be an integer >= 1; got 0 (int).", lines
    assert sum("Traceback" in line for line in lines) == 1 and not any("Failed to instantiate" in x for x in lines)
