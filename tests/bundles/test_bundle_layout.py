"""What every monai_srb bundle shares: the model-zoo layout and the metadata keys the bundle spec requires."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

BUNDLES = sorted((Path(__file__).resolve().parents[2] / "bundles").glob("srb_*"))
FILES = [
    "configs/metadata.json",
    "configs/train.json",
    "configs/evaluate.json",
    "configs/inference.json",
    "configs/multi_gpu_train.json",
    "configs/multi_gpu_evaluate.json",
    "configs/logging.conf",
    "docs/README.md",
    "LICENSE",
]
# The keys MONAI's bundle metadata schema marks required, and those of each network_data_format tensor.
REQUIRED = [
    "version",
    "changelog",
    "monai_version",
    "pytorch_version",
    "numpy_version",
    "required_packages_version",
    "task",
    "description",
    "authors",
    "copyright",
    "network_data_format",
]
TENSOR = ["type", "format", "num_channels", "spatial_shape", "dtype", "value_range", "is_patch_data", "channel_def"]
TOP_LEVEL_IDS = [
    "epochs",
    "batch_size",
    "dataset_dir",
    "synthetic_samples",
    "output_dir",
    "tracking_uri",
    "experiment_name",
    "device",
    "amp",
    "seed",
    "resume_from",
]


def test_three_bundles():
    names = [b.name for b in BUNDLES]
    assert names == ["srb_3d_segmentation", "srb_chest_xray_classification", "srb_skin_lesion_segmentation"]


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_layout_metadata_and_ids(bundle):
    for name in FILES:
        assert (bundle / name).is_file(), name
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert [k for k in REQUIRED if k not in meta] == []
    assert meta["version"] in meta["changelog"]
    fmt = meta["network_data_format"]
    for group, key in (("inputs", "image"), ("outputs", "pred")):
        assert [k for k in TENSOR if k not in fmt[group][key]] == [], (group, key)
    train = json.loads((bundle / "configs" / "train.json").read_text())
    size = "patch_size" if "patch_size" in train else "image_size"
    assert [k for k in TOP_LEVEL_IDS + [size] if k not in train] == []
    assert "default_tracking_uri" in train["tracking_uri"] and train["dataset_dir"] is None


CONFIGS = sorted(path for bundle in BUNDLES for path in (bundle / "configs").glob("*.json"))
GRIDS = sorted((Path(__file__).resolve().parents[2] / "workflows" / "grids").glob("*.json"))
# the longest `$` expression a config may hold; anything longer is a named function (monai_srb.bundle)
MAX_EXPRESSION = 100
# handlers that write (logs, MLflow, checkpoints, figures): the main process only, under DDP too
WRITERS = {
    "SRBMLFlowHandler", "StatsHandler", "ignite.handlers.ProgressBar", "AtomicCheckpointSaver",
    "SegmentationOverlayHandler", "GradCAMHandler",
}
# handler ids that runs and grids override by name
NAMED_HANDLERS = [
    "train#mlflow_handler", "train#stats_handler", "train#progress_bar", "validate#mlflow_handler",
    "validate#stats_handler",
]


def _expressions(config: object, path: str = "") -> list[tuple[str, str]]:
    """(id, expression) of every ``$`` string in a config."""
    if isinstance(config, dict):
        return [e for key, value in config.items() for e in _expressions(value, f"{path}#{key}".lstrip("#"))]
    if isinstance(config, list):
        return [e for i, value in enumerate(config) for e in _expressions(value, f"{path}#{i}")]
    return [(path, config)] if isinstance(config, str) and config.startswith("$") else []


def _handlers(config: dict, key: str) -> list[dict]:
    """The handlers of a list id (``train#handlers``), each ``%id`` copy looked up as the parser would."""
    section, name = key.split("#") if "#" in key and key not in config else (None, key)
    items = config[section][name] if section else config[key]
    found = []
    for item in items:
        if isinstance(item, str) and item.startswith("%"):
            section, name = item[1:].split("#")
            item = config[section][name]
        if isinstance(item, dict):
            found.append(item)
    return found


@pytest.mark.parametrize("path", CONFIGS, ids=[f"{p.parents[1].name}/{p.name}" for p in CONFIGS])
def test_no_logic_in_dollar_strings(path):
    expressions = _expressions(json.loads(path.read_text()))
    long = [(key, len(expr) - 1) for key, expr in expressions if len(expr) - 1 > MAX_EXPRESSION]
    assert long == [], f"expressions over {MAX_EXPRESSION} characters belong in a named function: {long}"


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_writing_handlers_run_on_the_main_process_only(bundle):
    train = json.loads((bundle / "configs" / "train.json").read_text())
    evaluate = json.loads((bundle / "configs" / "evaluate.json").read_text())
    for name in NAMED_HANDLERS:
        section, key = name.split("#")
        assert key in train[section], name
        assert f"%{name}" in train[section]["handlers"], f"{name} is not in {section}#handlers"
    handlers = _handlers(train, "train#handlers") + _handlers(train, "validate#handlers")
    handlers += _handlers(evaluate, "validate#handlers")
    writers = [h for h in handlers if h["_target_"] in WRITERS]
    assert len(writers) >= 6
    ungated = [h["_target_"] for h in writers if "not @is_main_process" not in str(h.get("_disabled_"))]
    assert ungated == []
    assert train["is_main_process"] is True and train["run_lock"]["enabled"] == "@is_main_process"
    for name in ("multi_gpu_train", "multi_gpu_evaluate"):
        text = (bundle / "configs" / f"{name}.json").read_text()
        assert '"is_main_process": "$dist.get_rank() == 0"' in text
        assert not re.search(r"handlers#\d", text) and "is_rank0" not in text


@pytest.mark.parametrize("grid", GRIDS, ids=[g.stem for g in GRIDS])
def test_grid_overrides_name_the_ids_they_change(grid):
    spec = json.loads(grid.read_text())
    parser = ConfigParser()
    parser.read_config([str(grid.parents[2] / spec["bundle"] / c) for c in spec["configs"]])
    keys = list(spec.get("overrides", {})) + spec["run_name_ids"]
    assert [k for k in keys if re.search(r"handlers#\d", k)] == []
    assert [k for k in keys if k.rsplit("#", 1)[0] not in parser] == []


# The train.json ids the three bundles write alike (the run folders, the lock, tracking, the optimizer, the run's
# initialize/finalize). There is no common.json (each bundle's docs say why), so this table keeps them alike:
# changing one in one bundle fails here until the others follow, or the id leaves the table with a reason.
SHARED_TRAIN_IDS = [
    "bundle_root", "config_files", "output_dir", "ckpt_dir", "ckpt_path", "dataset_dir", "synthetic_root",
    "data_root", "num_workers", "lr", "weight_decay", "amp", "compile", "compile_kwargs", "compiled_network", "seed",
    "resume_from", "keep_checkpoints", "val_interval", "is_main_process", "run_lock", "tracking_uri",
    "tracking_timeout", "registered_model_name", "is_not_rank0", "run_name", "block", "network", "network_config",
    "optimizer", "run_params", "initialize", "finalize",
]


@pytest.mark.parametrize("key", SHARED_TRAIN_IDS)
def test_the_shared_train_ids_are_written_alike_in_every_bundle(key):
    values = {b.name: json.loads((b / "configs" / "train.json").read_text()).get(key, "<missing>") for b in BUNDLES}
    assert len({json.dumps(v, sort_keys=True) for v in values.values()}) == 1, values
