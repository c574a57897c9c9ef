"""Command-line overrides of the three bundles, resolved without training: booleans, sizes, numbers, paths, choices, the
output_dir lock, and the synthetic set an override changes."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from monai.bundle import ConfigParser, ConfigWorkflow

from monai_srb.data.synthetic import SYNTHETIC_MANIFEST

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
CHEST, SKIN, SEG3D = "srb_chest_xray_classification", "srb_skin_lesion_segmentation", "srb_3d_segmentation"
# Internal switches set by the configs themselves (DDP rank), not user overrides.
INTERNAL = {"is_main_process"}
# Overrides that keep an initialize cheap: tiny synthetic data sets, tiny networks.
TINY: dict[str, dict[str, Any]] = {
    CHEST: {"image_size": 32, "synthetic_samples": 16, "batch_size": 8, "block": "srb_fft"},
    SKIN: {"image_size": 32, "synthetic_samples": 8, "batch_size": 2},
    SEG3D: {"synthetic_samples": 4, "synthetic_size": 32, "batch_size": 1},
}


def _files(bundle: str, *extra: str) -> list[str]:
    return [str(BUNDLES / bundle / "configs" / f"{name}.json") for name in ("train", *extra)]


def _parser(bundle: str, *extra: str, **overrides: Any) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(_files(bundle, *extra))
    parser.update({"bundle_root": str(BUNDLES / bundle), **overrides})
    return parser


def _workflow(bundle: str, *extra: str, **overrides: Any) -> ConfigWorkflow:
    return ConfigWorkflow(
        config_file=_files(bundle, *extra), logging_file=False, workflow_type=None,
        bundle_root=str(BUNDLES / bundle), **overrides,
    )


def _causes(e: BaseException | None) -> str:
    """The messages of an exception and of everything it was raised from (MONAI wraps expression errors)."""
    messages = []
    while e is not None:
        messages.append(f"{type(e).__name__}: {e}")
        e = e.__cause__ or e.__context__
    return "\n".join(messages)


def _bool_ids(bundle: str) -> list[str]:
    train = json.loads((BUNDLES / bundle / "configs" / "train.json").read_text())
    return sorted(k for k, v in train.items() if isinstance(v, bool) and k not in INTERNAL)


# (bundle, extra config files, boolean id, config item whose resolved value must be that boolean)
WHERE_USED = [
    (CHEST, (), "amp", "train#trainer#amp"),
    (CHEST, (), "amp", "validate#evaluator#amp"),
    (CHEST, ("evaluate",), "amp", "validate#evaluator#amp"),
    (CHEST, ("inference",), "amp", "evaluator#amp"),
    (SKIN, (), "amp", "train#trainer#amp"),
    (SKIN, (), "amp", "validate#evaluator#amp"),
    (SKIN, ("inference",), "amp", "evaluator#amp"),
    (SEG3D, (), "amp", "train#trainer#amp"),
    (SEG3D, ("evaluate",), "amp", "validate#evaluator#amp"),
    (SEG3D, ("inference",), "amp", "evaluator#amp"),
] + [(bundle, (), name, "flags") for bundle in (CHEST, SKIN, SEG3D) for name in _bool_ids(bundle)]
# (command-line spelling, boolean)
SPELLINGS = [("false", False), ("False", False), ("no", False), ("0", False), (0, False), ("TRUE", True), ("yes", True)]


def test_every_boolean_id_is_parsed():
    assert _bool_ids(CHEST) == ["amp", "compile", "log_every_iteration", "patient_wise", "require_images",
                                "test_at_end", "weighted_loss"]
    assert _bool_ids(SKIN) == ["amp", "compile", "keep_aspect", "log_every_iteration", "val_details"]
    assert _bool_ids(SEG3D) == ["amp", "check_data", "compile", "log_every_iteration"]
    for bundle in (CHEST, SKIN, SEG3D):
        for path in sorted((BUNDLES / bundle / "configs").glob("*.json")):
            config = json.loads(path.read_text())
            text = json.dumps({k: v for k, v in config.items() if k != "flags"})
            for name in _bool_ids(bundle):
                # every use reads the parsed flags, never the raw override (a string from the command line)
                assert not re.search(rf"@{name}\b", text), (path.name, name)


@pytest.mark.parametrize("spelling,expected", SPELLINGS, ids=[repr(s) for s, _ in SPELLINGS])
@pytest.mark.parametrize(
    "bundle,extra,name,item", WHERE_USED, ids=[f"{b}-{'+'.join(e)}-{n}-{i}" for b, e, n, i in WHERE_USED]
)
def test_command_line_spellings_resolve_to_booleans(bundle, extra, name, item, spelling, expected, tmp_path):
    value = _parser(bundle, *extra, output_dir=str(tmp_path), **{name: spelling}).get_parsed_content(item)
    assert (value[name] if item == "flags" else value) is expected


@pytest.mark.parametrize("bundle,name", [(b, n) for b in (CHEST, SKIN, SEG3D) for n in _bool_ids(b)])
def test_a_non_boolean_stops_the_run_before_anything_is_built(bundle, name, tmp_path):
    workflow = _workflow(bundle, output_dir=str(tmp_path), **{name: "maybe"})
    with pytest.raises(Exception) as error:
        workflow.initialize()
    expected = f"ValueError: override '{name}' must be a boolean (true/false, 1/0, yes/no in any case), got 'maybe'"
    assert expected in _causes(error.value)
    assert not (tmp_path / "synthetic_data").exists() and not (tmp_path / "run.lock").exists()


# (bundle, size override, bad value)
BAD_SIZES = [
    (CHEST, "image_size", [64, 64]),
    (CHEST, "image_size", "64x64"),
    (CHEST, "image_size", 0),
    (CHEST, "image_size", -32),
    (SKIN, "image_size", [64, 64]),
    (SKIN, "image_size", "big"),
    (SKIN, "image_size", 0),
    (SKIN, "image_size", -64),
    (SKIN, "image_size", 40),
    (SKIN, "image_size", 16),
    (SEG3D, "patch_size", [24, 32, 32]),
    (SEG3D, "patch_size", [32, 32]),
    (SEG3D, "patch_size", "32"),
    (SEG3D, "patch_size", 0),
    (SEG3D, "patch_size", [16, 16, 16]),
    (SEG3D, "synthetic_size", 0),
    (SEG3D, "synthetic_size", [32, 32, 32]),
]


@pytest.mark.parametrize("bundle,name,value", BAD_SIZES, ids=[f"{b}-{n}-{v!r}" for b, n, v in BAD_SIZES])
def test_a_bad_size_stops_the_run_before_anything_is_built(bundle, name, value, tmp_path):
    workflow = _workflow(bundle, output_dir=str(tmp_path), **{name: value})
    with pytest.raises(Exception) as error:
        workflow.initialize()
    assert f"ValueError: override '{name}' must be a positive integer" in _causes(error.value)
    assert f"got {value!r}" in _causes(error.value)
    assert not (tmp_path / "synthetic_data").exists() and not (tmp_path / "run.lock").exists()


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


@pytest.mark.parametrize("extra", [(), ("evaluate",), ("inference",)], ids=["train", "evaluate", "inference"])
@pytest.mark.parametrize("bundle", [CHEST, SKIN, SEG3D])
def test_a_second_run_on_one_output_dir_is_refused(bundle, extra, tmp_path):
    other = _sleeper()  # the first run, still going
    try:
        (tmp_path / "run.lock").write_text(f"{other.pid}\n")
        workflow = _workflow(bundle, *extra, output_dir=str(tmp_path), **TINY[bundle])
        with pytest.raises(Exception) as error:
            workflow.initialize()
            workflow.run()  # training takes the lock first thing in run: its initialize builds nothing
    finally:
        other.kill()
        other.wait()
    message = f"RuntimeError: output_dir '{tmp_path}' is in use by another run (PID {other.pid}"
    assert message in _causes(error.value)
    assert sorted(os.listdir(tmp_path)) == ["run.lock"]  # no synthetic data, no MLflow store, no checkpoint


def test_a_killed_runs_lock_is_taken_over_and_the_network_overrides_are_stored(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "run.lock").write_text(f"{dead.pid}\n")
    workflow = _workflow(SKIN, output_dir=str(tmp_path), **TINY[SKIN], epochs=1)
    workflow.initialize()
    with pytest.warns(RuntimeWarning, match=rf"PID {dead.pid}, which is no longer running"):
        workflow.run()
    assert (tmp_path / "run.lock").read_text().split()[0] == str(os.getpid())
    stored = json.loads((tmp_path / "models" / "network_config.json").read_text())["overrides"]
    assert stored["image_size"] == 32 and stored["block"] == "srb_fft" and stored["image_channels"] == 3
    assert stored["network_def#_target_"] == "monai_srb.nets.srb_unet.SRBUNet"
    workflow.finalize()
    assert not (tmp_path / "run.lock").exists()


@pytest.mark.parametrize("spelling,expected", [("false", False), ("no", False), ("true", True), (True, True)])
def test_val_details_adds_the_per_image_metrics_saver(spelling, expected, tmp_path):
    from monai.handlers import MetricsSaver

    parser = _parser(SKIN, output_dir=str(tmp_path), val_details=spelling)
    savers = [h for h in parser.get_parsed_content("validate#handlers") if isinstance(h, MetricsSaver)]
    assert len(savers) == int(expected)
    if expected:
        assert savers[0].save_dir == str(tmp_path / "val_details")
        assert list(savers[0].metric_details) == ["val_dice", "val_hc_error_mm"]


@pytest.mark.parametrize("bundle", [CHEST, SKIN, SEG3D])
@pytest.mark.parametrize("spelling,compiled", [("false", False), (False, False), ("true", True), ("yes", True)])
def test_compile_gives_every_engine_the_compiled_network(bundle, spelling, compiled, tmp_path):
    import torch

    from monai_srb.bundle import CompiledOnPlainTensors

    parser = _parser(bundle, output_dir=str(tmp_path), compile=spelling, **TINY[bundle])
    network = parser.get_parsed_content("network")
    engine = parser.get_parsed_content("compiled_network")
    assert isinstance(engine, CompiledOnPlainTensors) is compiled
    if compiled:
        assert isinstance(engine.compiled, torch._dynamo.eval_frame.OptimizedModule)
    assert (engine.compiled._orig_mod if compiled else engine) is network  # the savers keep saving the eager one
    train = json.loads((BUNDLES / bundle / "configs" / "train.json").read_text())
    engines = [v for group in ("train", "validate") for v in train[group].values()
               if isinstance(v, dict) and v.get("_target_") in ("SupervisedTrainer", "SupervisedEvaluator")]
    assert engines and all(e["network"] == "@compiled_network" for e in engines)


def _printed_last(error: BaseException) -> str:
    """The last non-empty line ``sys.excepthook`` prints for ``error`` left uncaught (what ends a command's output)."""
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        sys.excepthook(type(error), error, error.__traceback__)
    return [line for line in buffer.getvalue().splitlines() if line.strip()][-1]


MISSING = "/no/such/data_set"
# (bundle, config files, override, value, what the message says is expected)
BAD_OVERRIDES = [
    (SKIN, ("train",), "epochs", 0, "an integer >= 1"),
    (SKIN, ("train",), "batch_size", 0, "an integer >= 1"),
    (SKIN, ("train",), "batch_size", 2.5, "an integer >= 1"),
    (SKIN, ("train",), "lr", 0, "a number > 0"),
    (SKIN, ("train",), "lr", "fast", "a number > 0"),
    (SKIN, ("train",), "weight_decay", -1e-4, "a number >= 0"),
    (SKIN, ("train",), "num_workers", -1, "an integer >= 0"),
    (SKIN, ("train",), "val_fraction", 0, "a number > 0 and < 1"),
    (SKIN, ("train",), "val_fraction", 1.5, "a number > 0 and < 1"),
    (SKIN, ("train",), "fold", 5, "an integer >= 0 and <= 4, or null"),
    (SKIN, ("train",), "num_folds", 1, "an integer >= 2"),
    (SKIN, ("train",), "synthetic_samples", 1, "an integer >= 2"),
    (SKIN, ("train",), "seed", -1, "an integer >= 0"),
    (SKIN, ("train",), "val_interval", 0, "an integer >= 1"),
    (SKIN, ("train",), "keep_checkpoints", 0, "an integer >= 1, or null"),
    (SKIN, ("train",), "tracking_timeout", 0, "a number > 0"),
    (SKIN, ("train",), "image_size", 0, "a positive integer, at least 32, each a multiple of 16"),
    (SKIN, ("train",), "norm", "Batch", "one of 'instance', 'batch'"),
    (SKIN, ("train",), "dataset_dir", MISSING, "an existing folder, or null"),
    (SKIN, ("train", "evaluate"), "batch_size", 0, "an integer >= 1"),
    (SKIN, ("inference",), "norm", "Batch", "one of 'instance', 'batch'"),
    (SKIN, ("inference",), "num_workers", "2", "an integer >= 0"),
    (SEG3D, ("train",), "epochs", 0, "an integer >= 1"),
    (SEG3D, ("train",), "batch_size", "2", "an integer >= 1"),
    (SEG3D, ("train",), "num_samples", 0, "an integer >= 1"),
    (SEG3D, ("train",), "lr", -1, "a number > 0"),
    (SEG3D, ("train",), "val_fraction", 1, "a number > 0 and < 1"),
    (SEG3D, ("train",), "split_seed", -1, "an integer >= 0"),
    (SEG3D, ("train",), "sw_batch_size", 0, "an integer >= 1"),
    (SEG3D, ("train",), "num_classes", 1, "an integer >= 2"),
    (SEG3D, ("train",), "in_channels", 0, "an integer >= 1"),
    (SEG3D, ("train",), "synthetic_samples", 1, "an integer >= 2"),
    (SEG3D, ("train",), "synthetic_size", 8, "a positive integer, at least 16"),
    (SEG3D, ("train",), "norm", "group", "one of 'instance', 'batch'"),
    (SEG3D, ("train",), "dataset_dir", MISSING, "an existing folder, or null"),
    (SEG3D, ("train", "evaluate"), "num_workers", -2, "an integer >= 0"),
    (SEG3D, ("inference",), "sw_batch_size", 0, "an integer >= 1"),
    (CHEST, ("train",), "epochs", -1, "an integer >= 1"),
    (CHEST, ("train",), "batch_size", 0, "an integer >= 1"),
    (CHEST, ("train",), "lr", 0.0, "a number > 0"),
    (CHEST, ("train",), "val_fraction", 0.0, "a number > 0 and < 1"),
    (CHEST, ("train",), "cache_rate", 2, "a number >= 0 and <= 1"),
    (CHEST, ("train",), "early_stop_patience", 0, "an integer >= 1"),
    (CHEST, ("train",), "num_cam_images", -1, "an integer >= 0"),
    (CHEST, ("train",), "max_samples", 0, "an integer >= 1, or null"),
    (CHEST, ("train",), "synthetic_samples", 1, "an integer >= 2"),
    (CHEST, ("train",), "image_size", 0, "a positive integer"),
    (CHEST, ("train",), "dataset_dir", MISSING, "an existing folder or .npz file, or null"),
    (CHEST, ("train", "evaluate"), "batch_size", 0, "an integer >= 1"),
    (CHEST, ("inference",), "batch_size", -8, "an integer >= 1"),
]


@pytest.mark.parametrize(
    "bundle,files,name,value,expected", BAD_OVERRIDES,
    ids=[f"{b}-{'+'.join(f)}-{n}-{v!r}" for b, f, n, v, _ in BAD_OVERRIDES],
)
def test_a_bad_override_is_the_last_line_and_stops_the_run_before_anything_is_written(
    bundle, files, name, value, expected, tmp_path
):
    workflow = ConfigWorkflow(
        config_file=[str(BUNDLES / bundle / "configs" / f"{f}.json") for f in files], logging_file=False,
        workflow_type=None, bundle_root=str(BUNDLES / bundle), output_dir=str(tmp_path), **{name: value},
    )
    with pytest.raises(Exception) as error:
        workflow.initialize()
    shown = repr(value) if name != "dataset_dir" else f"{value!r}, which does not exist."
    assert _printed_last(error.value) == f"ValueError: override {name!r} must be {expected}; got {shown}" + (
        "" if name == "dataset_dir" else f" ({type(value).__name__})."
    )
    assert os.listdir(tmp_path) == []  # no synthetic data, no lock, no MLflow store


# (bundle, override, value, the last line python -m monai.bundle run prints): one case a bundle, each a different
# check. A case is a process that imports MONAI and torch (7 s of CPU); the in-process test above checks the messages
# of every override.
COMMAND_LINES = [
    (SKIN, "dataset_dir", MISSING,
     f"ValueError: override 'dataset_dir' must be an existing folder, or null; got '{MISSING}', which does not exist."),
    (SEG3D, "epochs", "0", "ValueError: override 'epochs' must be an integer >= 1; got 0 (int)."),
    (CHEST, "lr", "-1e-3", "ValueError: override 'lr' must be a number > 0; got -0.001 (float)."),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "bundle,name,value,last", COMMAND_LINES, ids=[f"{b}-{n}-{v}" for b, n, v, _ in COMMAND_LINES]
)
def test_the_documented_command_ends_with_the_checks_error(bundle, name, value, last, tmp_path):
    # ~10 s of CPU a case (importing MONAI, torch and the configs' modules), hence slow
    root = BUNDLES / bundle
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(root / "configs" / "train.json"),
               "--bundle_root", str(root), "--output_dir", str(tmp_path / "out"), f"--{name}", value]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)  # a loaded machine: minutes
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and lines[-1] == last, done.stderr[-3000:]
    assert "Failed to instantiate" not in done.stderr
    assert not (tmp_path / "out" / "synthetic_data").exists()


# (bundle, the item holding every image of the data set, how many items it holds)
DATA_ITEMS = [
    (SKIN, "datalist", len),
    (SEG3D, "datalist", len),
    (CHEST, "datalists", lambda lists: len(lists["train"]) + len(lists["val"])),
]


@pytest.mark.parametrize("bundle,item,count", DATA_ITEMS, ids=[b for b, _, _ in DATA_ITEMS])
def test_a_run_with_fewer_synthetic_samples_reads_only_its_own_set(bundle, item, count, tmp_path):
    tiny = {k: v for k, v in TINY[bundle].items() if k != "synthetic_samples"}
    for samples in (6, 3, 3, 5):  # fewer than the set in output_dir, the same again, more
        parser = _parser(bundle, output_dir=str(tmp_path), synthetic_samples=samples, **tiny)
        assert count(parser.get_parsed_content(item)) == samples
    manifest = json.loads((tmp_path / "synthetic_data" / SYNTHETIC_MANIFEST).read_text())
    assert 5 in manifest["params"].values()
