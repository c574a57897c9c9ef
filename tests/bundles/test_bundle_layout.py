"""What every monai_srb bundle shares: the model-zoo layout and the metadata keys the bundle spec requires."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
