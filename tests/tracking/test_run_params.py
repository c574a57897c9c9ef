from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser
from monai.networks.nets import BasicUNet

from monai_srb.nets import SRBUNet, insert_blocks
from monai_srb.nets.srb_classifiers import SRBDenseNet121
from monai_srb.nets.srb_unet import unet_norm
from monai_srb.tracking import RunParams, describe_network, portable_value
from monai_srb.tracking.run_params import config_params

SIZE = 32  # smallest input a 4-level U-Net with SRBs at every level takes


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "train.json"
    path.write_text(json.dumps({
        "_meta_": {"name": "toy", "version": "0.1.0"},
        "config_files": str(path),
        "epochs": 10,
        "lr": 0.1,
        "net": {"_target_": "torch.nn.Identity", "unused": {"depth": 2, "width": 4}},
        "handler": {"_target_": "torch.nn.Identity", "depth": 1},
        "handlers": ["%handler"],  # a copy of the named handler, as the bundles' handler lists take
        "tracked": {"epochs": "@epochs", "lr": "@lr", "steps": "$@epochs * 2"},
        "run_params": {"_target_": "monai_srb.tracking.RunParams", "config_files": "@config_files",
                       "tracked": "@tracked", "meta": "@_meta_"},
    }))
    return path


# (overrides, params without the config (monai.bundle run), params with it (a caller holding the parser))
PARAM_CASES = [
    ({}, {"epochs": "10", "lr": "0.1", "steps": "20"}, {}),
    ({"epochs": 3}, {"epochs": "3", "lr": "0.1", "steps": "6"}, {}),  # a tracked id: its value, once
    ({"net#unused#depth": 5, "extra": [1, 2]}, {"epochs": "10", "lr": "0.1", "steps": "20"},
     {"net.unused.depth": "5", "extra": "[1, 2]"}),
    # an override of a handler that a list holds as a `%` copy: logged once, not per copy
    ({"handler#depth": 3}, {"epochs": "10", "lr": "0.1", "steps": "20"}, {"handler.depth": "3"}),
]


@pytest.mark.parametrize("overrides,tracked,found", PARAM_CASES)
def test_params_are_the_tracked_values_and_with_the_config_the_overrides(tmp_path, overrides, tracked, found):
    parser = ConfigParser()
    parser.read_config(str(_config(tmp_path)))
    parser.update(overrides)
    run_params = parser.get_parsed_content("run_params")
    assert run_params.params() == tracked  # what the config alone can give
    assert run_params.meta == {"name": "toy", "version": "0.1.0"}
    run_params.config = parser.get()
    assert run_params.params() == {**tracked, **found}


def test_config_is_a_copy_and_gives_the_meta(tmp_path):
    parser = ConfigParser()
    parser.read_config(str(_config(tmp_path)))
    run_params = RunParams(config=parser.get())
    parser["epochs"] = 4
    assert run_params.config["epochs"] == 10 and run_params.meta["name"] == "toy"
    assert RunParams().meta == {} and RunParams().params() == {}


@pytest.mark.parametrize(
    "config_files,expected",
    [(None, []), ("a.json", ["a.json"]), ("a.json,b.json", ["a.json", "b.json"]), (["a.json", "b.json"],
                                                                                   ["a.json", "b.json"])],
)
def test_files_as_monai_bundle_run_takes_them(config_files, expected):
    assert RunParams(config_files).files() == expected


# (a param value under bundle root "<root>", what the run records; None: left out) with "<root>" and "<cwd>" replaced
PATH_CASES = [
    ("<root>/runs", "runs"),
    ("<root>/runs/models/model.pt", "runs/models/model.pt"),
    ("<root>", "."),
    ("sqlite:///<root>/runs/mlflow.db", "sqlite:///runs/mlflow.db"),
    ("/elsewhere/data/hc18", None),  # a machine's folder outside the bundle
    ("sqlite:////elsewhere/mlflow.db", None),
    ("bundle/runs", "runs"),  # relative to the working directory, into the bundle
    ("../data/hc18", "../data/hc18"),  # relative, not into the bundle: no machine's path
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("instance", "instance"),
    ("[16, 32, 64]", "[16, 32, 64]"),
    ("None", "None"),
    ("0.001", "0.001"),
]


@pytest.mark.parametrize("value,expected", PATH_CASES)
def test_params_name_paths_relative_to_the_bundle_root(tmp_path, monkeypatch, value, expected):
    root = tmp_path / "bundle"
    root.mkdir()
    monkeypatch.chdir(tmp_path)
    value = value.replace("<root>", str(root)).replace("/elsewhere", str(tmp_path / "elsewhere"))
    assert portable_value(value, str(root)) == expected
    assert portable_value(value, "bundle") == expected  # a relative bundle root, as the bundles' "."
    params = RunParams(tracked={"output_dir": value, "epochs": 3}, bundle_root=str(root)).params()
    assert params == ({"epochs": "3"} if expected is None else {"output_dir": expected, "epochs": "3"})


def test_without_a_bundle_root_absolute_paths_are_left_out():
    assert RunParams(tracked={"output_dir": "/tmp/runs", "dataset_dir": "data/isic", "lr": 0.1}).params() == {
        "dataset_dir": "data/isic", "lr": "0.1"
    }


def test_deprecated_config_params_gives_the_tracked_values(tmp_path):
    params = config_params(str(_config(tmp_path)), {"epochs": 3, "features": [1, 2]})
    assert params == {"epochs": "3", "features": "[1, 2]"}


def test_long_values_are_cut_to_500_characters():
    assert RunParams(tracked={"files": list(range(1000))}).params()["files"] == str(list(range(1000)))[:500]


# ---- the network actually built ----


def _unet(block: str = "srb_fft", positions: tuple[str, ...] = ("before_up4", "before_up1"), norm: str = "instance"):
    torch.manual_seed(0)
    return SRBUNet(2, 1, 2, features=(4, 4, 8, 8, 8, 4), srb_positions=positions, block=block, spatial_size=SIZE,
                   unet_args={"norm": unet_norm(norm)})


def _inserted():
    torch.manual_seed(0)
    net = BasicUNet(2, 1, 2, features=(4, 4, 8, 8, 8, 4))
    return insert_blocks(net, ["down_2"], block="srb_fft", position="after", example_input=[1, 1, SIZE, SIZE])


@pytest.mark.parametrize(
    "build,expected",
    [
        (lambda: _unet(), {"network": "SRBUNet", "srb_count": 2, "srb_positions": ["before_up4", "before_up1"],
                           "block": "srb_fft", "norm": "instance"}),
        (lambda: _unet("srb_aom", ("after_up2",), "batch"),
         {"network": "SRBUNet", "srb_count": 1, "srb_positions": ["after_up2"], "block": "srb_aom", "norm": "batch"}),
        (lambda: _unet(positions=()), {"network": "SRBUNet", "srb_count": 0, "srb_positions": [], "block": "none",
                                       "norm": "instance"}),
        (_inserted, {"network": "BasicUNet", "srb_count": 1, "srb_positions": ["after_down_2"], "block": "srb_fft",
                     "norm": "instance"}),
        (lambda: SRBDenseNet121(2, 1, 3, srb_after=[]),  # the chest bundle's --network_def#srb_after '[]'
         {"network": "SRBDenseNet121", "srb_count": 0, "srb_positions": [], "block": "none", "norm": "batch"}),
    ],
    ids=["unet_srb_f", "unet_aom_batch", "unet_plain", "inserted", "densenet_plain"],
)
def test_describe_network(build, expected):
    assert describe_network(build()) == expected
