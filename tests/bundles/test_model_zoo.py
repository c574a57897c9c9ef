"""
The MONAI model zoo's checks on the three bundles: ``verify_net_in_out`` with its defaults, ``check_properties``,
``monai.bundle.load`` from a local folder without side effects, documented ``eval_metrics``,
``multi_gpu_evaluate.json`` and one LICENSE format with a data licence note in each bundle's docs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow, load, verify_net_in_out
from PIL import Image

from monai_srb.data import make_synthetic_skin_lesions

# MONAI warns on every config it parses that configs run code; these are the bundles' own.
pytestmark = pytest.mark.filterwarnings("ignore:parsing config_file:UserWarning")

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
CHEST, SKIN, SEG3D = "srb_chest_xray_classification", "srb_skin_lesion_segmentation", "srb_3d_segmentation"
NAMES = [SEG3D, CHEST, SKIN]
# Tiny synthetic data sets and networks: every workflow below builds in seconds on a CPU.
TINY: dict[str, dict[str, Any]] = {
    CHEST: {"image_size": 32, "synthetic_samples": 16, "batch_size": 8},
    SKIN: {"image_size": 32, "synthetic_samples": 8, "batch_size": 2},
    SEG3D: {"synthetic_samples": 4, "synthetic_size": 32, "batch_size": 1, "sw_batch_size": 2},
}
# The data sets each bundle's "Data licence" section must name, with their licence terms.
DATA_LICENCES = {
    SEG3D: ["Medical Segmentation Decathlon", "CC BY-SA 4.0"],
    CHEST: ["ChestX-ray14", "NIH Clinical Center", "MedMNIST", "CC BY 4.0", "CC BY-NC 4.0"],
    SKIN: ["ISIC", "PH2", "HC18", "CC BY 4.0"],
}


def _configs(bundle: str, *names: str) -> list[str]:
    return [str(BUNDLES / bundle / "configs" / f"{name}.json") for name in names]


def _meta(bundle: str) -> str:
    return str(BUNDLES / bundle / "configs" / "metadata.json")


def _parser(bundle: str, **overrides: Any) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(_configs(bundle, "train"))
    parser.read_meta(_meta(bundle))
    parser.update({"bundle_root": str(BUNDLES / bundle), **overrides})
    return parser


def _workflow(bundle: str, *names: str, workflow_type: str | None, **overrides: Any) -> ConfigWorkflow:
    return ConfigWorkflow(
        config_file=_configs(bundle, *names), meta_file=_meta(bundle), logging_file=False,
        workflow_type=workflow_type, bundle_root=str(BUNDLES / bundle), **{**TINY[bundle], **overrides},
    )


@pytest.fixture
def root_logging() -> Iterator[None]:
    """``monai.bundle.load`` applies the bundle's logging.conf to the root logger: put pytest's back afterwards."""
    handlers, level = logging.root.handlers[:], logging.root.level
    yield
    logging.root.handlers[:] = handlers
    logging.root.setLevel(level)


@pytest.mark.parametrize("bundle", NAMES)
def test_verify_net_in_out_passes_with_its_defaults(bundle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # the model zoo's CI: no --n / --p / --any, so every "k*n" size of the metadata is tried at n = 1
    verify_net_in_out(
        net_id="network_def", meta_file=_meta(bundle), config_file=_configs(bundle, "train")[0], device="cpu"
    )
    assert os.listdir(tmp_path) == []


# inference.json on its own, as the model zoo's CI runs it, and merged after train.json, as the docs run it
CHECKS = [(b, "train", ("train",)) for b in NAMES] + [
    (b, "infer", names) for b in NAMES for names in (("inference",), ("train", "inference"))
]


@pytest.mark.parametrize("bundle,workflow_type,names", CHECKS, ids=[f"{b}-{'+'.join(n)}" for b, _, n in CHECKS])
def test_check_properties_finds_every_property(bundle, workflow_type, names, tmp_path):
    workflow = _workflow(bundle, *names, workflow_type=workflow_type, output_dir=str(tmp_path))
    workflow.initialize()
    assert workflow.check_properties() == []


@pytest.mark.usefixtures("root_logging")
@pytest.mark.parametrize("workflow_type", ["train", "inference"])
@pytest.mark.parametrize("bundle", NAMES)
def test_load_from_a_local_folder_builds_the_network_and_nothing_else(bundle, workflow_type, tmp_path, monkeypatch):
    torch.manual_seed(0)
    network = _parser(bundle).get_parsed_content("network_def")
    with torch.no_grad():
        for p in network.parameters():
            p.add_(torch.rand_like(p))  # weights no fresh network has, alpha included
    weights = tmp_path / "weights" / "model.pt"
    weights.parent.mkdir()
    torch.save(network.state_dict(), weights)
    cwd = tmp_path / "cwd"  # bundle_root defaults to ".", so output_dir would be ./runs here
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    # workflow_type names the config: configs/train.json or configs/inference.json alone; load runs its initialize
    loaded = load(
        name=bundle, bundle_dir=str(BUNDLES), model_file=str(weights), workflow_type=workflow_type, device="cpu"
    )
    expected = network.state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in loaded.state_dict().items())
    assert os.listdir(cwd) == []  # no run.lock, synthetic data, MLflow store or network_config.json


@pytest.mark.parametrize("mode,channels", [("RGB", 3), ("L", 1)])
def test_skin_network_def_reads_one_image_of_a_dataset_not_the_data_set(mode, channels, tmp_path):
    root = Path(make_synthetic_skin_lesions(tmp_path / "data", num_samples=3, image_size=[24, 32], seed=0))
    images = sorted((root / "images").iterdir())
    for image in images:
        Image.open(image).convert(mode).save(image)
    images[-1].write_bytes(b"not an image")  # the data list stops on it; building the network never opens it
    parser = _parser(SKIN, dataset_dir=str(root), output_dir=str(tmp_path / "out"), image_size=32)
    network = parser.get_parsed_content("network_def")
    first_conv = next(m for m in network.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.in_channels == channels
    assert not (tmp_path / "out").exists()
    with pytest.raises(Exception) as error:
        parser.get_parsed_content("datalist")
    messages, cause = [], error.value
    while cause is not None:
        messages.append(str(cause))
        cause = cause.__cause__
    assert any(f"image {images[-1]} cannot be read as an image" in m for m in messages), messages


@pytest.mark.parametrize("bundle", NAMES)
def test_eval_metrics_are_numbers_of_the_documented_run(bundle):
    meta = json.loads(Path(_meta(bundle)).read_text())
    if "eval_metrics" not in meta:
        return
    docs = (BUNDLES / bundle / "docs" / "README.md").read_text()
    assert "eval_metrics" in docs, "the docs must say which run the metadata's eval_metrics come from"
    documented = {float(x) for x in re.findall(r"\d+\.\d+", docs)}
    assert meta["eval_metrics"], "an empty eval_metrics: leave the key out"
    for name, value in meta["eval_metrics"].items():
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (name, value)
        assert float(value) in documented, (name, value)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _evaluate(bundle: str, *names: str, output_dir: Path) -> dict[str, float]:
    workflow = _workflow(bundle, "train", "evaluate", *names, workflow_type=None, output_dir=str(output_dir))
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    metrics = workflow.parser.get_parsed_content("validate#evaluator").state.metrics
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}  # not the per-class dicts


@pytest.mark.slow
@pytest.mark.parametrize("bundle", NAMES)
def test_multi_gpu_evaluate_runs_as_one_gloo_process_and_scores_as_evaluate(bundle, tmp_path, monkeypatch):
    torch.manual_seed(0)
    network = _parser(bundle, output_dir=str(tmp_path), **TINY[bundle]).get_parsed_content("network_def")
    (tmp_path / "models").mkdir()
    torch.save(network.state_dict(), tmp_path / "models" / "model.pt")  # the checkpoint evaluate.json loads
    single = _evaluate(bundle, output_dir=tmp_path)
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "RANK": "0", "WORLD_SIZE": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    ddp = _evaluate(bundle, "multi_gpu_evaluate", output_dir=tmp_path)
    assert not torch.distributed.is_initialized() and idist.backend() is None  # nothing left for the next run
    assert single and ddp == pytest.approx(single, nan_ok=True)
    assert not (tmp_path / "run.lock").exists()


def _section(text: str, heading: str) -> str:
    start = text.index(heading) + len(heading)
    end = text.find("\n## ", start)
    return text[start : end if end >= 0 else None]


def test_one_licence_format_for_every_bundle():
    texts = {(BUNDLES / b / "LICENSE").read_text() for b in NAMES}
    assert len(texts) == 1, "the three LICENSE files differ"
    (text,) = texts
    assert text.startswith("Copyright (c) monai_srb contributors\n")
    assert 'Licensed under the Apache License, Version 2.0 (the "License")' in text
    assert "http://www.apache.org/licenses/LICENSE-2.0" in text and '"Data licence" in docs/README.md' in text


@pytest.mark.parametrize("bundle", NAMES)
def test_docs_hold_a_data_licence_note(bundle):
    docs = (BUNDLES / bundle / "docs" / "README.md").read_text()
    assert "\n## Data licence\n" in docs
    section = _section(docs, "\n## Data licence\n")
    assert "LICENSE" in section
    assert [name for name in DATA_LICENCES[bundle] if name not in section] == []
