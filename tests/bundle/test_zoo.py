"""
``monai-srb package`` (:mod:`monai_srb.bundle.zoo`): a finished run becomes a bundle that the MONAI model zoo's CI
accepts and that ``monai.bundle run`` infers with, with no ``ckpt_path`` override; the run's own validation figure
in ``eval_metrics``; refusals that name the path and lose nothing.

The zoo's checks are restated here, not imported (tests run on a clean clone): ``ci/verify_bundle.py`` and
``ci/utils.py`` of Project-MONAI/model-zoo (commit dfae206d), ``verify(bundle, mode="full")``:

- ``verify_bundle_directory``: ``large_files.{yml,yaml,json}`` read by MONAI's ``ConfigParser``, each entry given
  to MONAI's ``download_url`` (``path`` as ``filepath``, ``fuzzy=True``: a file there is hash-checked, not
  downloaded); ``configs/metadata.json`` and ``LICENSE`` necessary; ``models/model.pt`` and
  ``configs/inference.{json,yaml,yml}`` preferred (the zoo fails on them too);
- ``verify_version_changes``: a ``version`` and a ``changelog`` that holds it;
- ``verify_metadata_format``: MONAI's ``verify_metadata`` against the metadata's ``schema``;
- ``verify_data_shape`` / ``verify_torchscript``: MONAI's ``verify_net_in_out`` and ``ckpt_export`` on
  ``configs/inference.json``, and ``torch.jit.load`` of ``models/model.ts``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import mlflow
import numpy as np
import pytest
import torch
from monai.apps.utils import HashCheckError, download_url
from monai.bundle import ConfigParser, ConfigWorkflow, ckpt_export, run, verify_metadata, verify_net_in_out
from PIL import Image

from monai_srb.bundle import save_network_config
from monai_srb.bundle.zoo import RUN_KEY, package_run
from monai_srb.tracking import (
    CHECKPOINT_SHA256_TAG,
    default_tracking_uri,
    file_sha256,
    get_or_create_experiment,
    sqlite_artifact_location,
)

pytestmark = pytest.mark.filterwarnings("ignore:parsing config_file:UserWarning")

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
SKIN, CHEST, SEG3D = "srb_skin_lesion_segmentation", "srb_chest_xray_classification", "srb_3d_segmentation"
# 8 synthetic images at 32 x 32 (6 train, 2 validate), one epoch
TINY: dict[str, Any] = {"image_size": 32, "synthetic_samples": 8, "batch_size": 2}
# The zoo's necessary and preferred files (verify_bundle.py: necessary_files_list, preferred_files_list).
ZOO_FILES = ["configs/metadata.json", "LICENSE", "models/model.pt", "configs/inference.json"]
# What the metadata's schema (its "schema" URL: MONAI-extra-test-data 0.8.1, meta_schema_20240725.json) requires,
# restated: the required keys and the types of the keys the package writes, and the network_data_format tensors.
_TENSOR = {
    "type": "object",
    "required": ["type", "format", "num_channels", "spatial_shape", "dtype", "value_range"],
    "properties": {"num_channels": {"type": "integer"}, "spatial_shape": {"type": "array"},
                   "value_range": {"type": "array", "items": {"type": "number"}}},
}
SCHEMA = {
    "type": "object",
    "required": ["schema", "version", "monai_version", "pytorch_version", "numpy_version",
                 "required_packages_version", "task", "description", "authors", "copyright", "network_data_format"],
    "properties": {
        "version": {"type": "string"}, "changelog": {"type": "object"}, "eval_metrics": {"type": "object"},
        "required_packages_version": {"type": "object"}, "references": {"type": "array", "items": {"type": "string"}},
        "network_data_format": {
            "type": "object", "required": ["inputs", "outputs"],
            "properties": {key: {"type": "object", "additionalProperties": _TENSOR} for key in ("inputs", "outputs")},
        },
    },
}


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verify_bundle_directory(bundle: Path) -> None:
    """The zoo's verify_bundle_directory and verify_version_changes (but its model_info.json lookup)."""
    (large,) = [bundle / f"large_files.{s}" for s in ("yml", "yaml", "json") if (bundle / f"large_files.{s}").is_file()]
    parser = ConfigParser()
    parser.read_config(str(large))
    for entry in parser.get()["large_files"]:
        entry = {k: v for k, v in entry.items() if not (k in ("hash_val", "hash_type") and v == "")}
        download_url(filepath=bundle / entry.pop("path"), fuzzy=True, **entry)
    for name in ZOO_FILES:
        assert (bundle / name).is_file(), name
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert meta["version"] in meta["changelog"]


def _verify_metadata(bundle: Path, schema_dir: Path) -> None:
    """The zoo's verify_metadata_format, with the schema restated (SCHEMA) where the zoo downloads it first."""
    schema_dir.mkdir(exist_ok=True)
    (schema_dir / "schema.json").write_text(json.dumps(SCHEMA))
    verify_metadata(meta_file=str(bundle / "configs" / "metadata.json"), filepath=str(schema_dir / "schema.json"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One epoch of the skin bundle on its tiny synthetic set, at 1 torch thread, tracked in <run_dir>/mlflow.db."""
    run_dir = tmp_path_factory.mktemp("skin_run")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        workflow = ConfigWorkflow(
            config_file=str(BUNDLES / SKIN / "configs" / "train.json"), logging_file=False, workflow_type="train",
            bundle_root=str(BUNDLES / SKIN), output_dir=str(run_dir), epochs=1, **TINY,
        )
        workflow.initialize()
        workflow.run()
        workflow.finalize()
    finally:
        torch.set_num_threads(threads)
    client = mlflow.MlflowClient(default_tracking_uri(str(run_dir)))
    (found,) = client.search_runs([client.get_experiment_by_name(SKIN).experiment_id])
    return SimpleNamespace(run_dir=run_dir, client=client, run=found)


@pytest.fixture(scope="module")
def packaged(trained: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zoo") / SKIN
    return package_run(trained.run_dir, BUNDLES / SKIN, out, num_threads=1)


@pytest.mark.slow
def test_the_package_holds_the_zoo_layout_and_the_runs_checkpoint(packaged, trained):
    configs = sorted(f"configs/{p.name}" for p in (BUNDLES / SKIN / "configs").iterdir())
    expected = configs + ["LICENSE", "docs/README.md", "docs/data_license.txt", "large_files.yml",
                          "models/model.pt", "models/model.ts"]
    assert _files(packaged) == sorted(expected)
    assert (packaged / "models" / "model.pt").read_bytes() == (trained.run_dir / "models" / "model.pt").read_bytes()
    assert (packaged / "LICENSE").read_bytes() == (BUNDLES / SKIN / "LICENSE").read_bytes()
    torch.jit.load(str(packaged / "models" / "model.ts"))


@pytest.mark.slow
def test_large_files_name_each_model_file_with_its_sha256(packaged, tmp_path):
    parser = ConfigParser()
    parser.read_config(str(packaged / "large_files.yml"))
    entries = parser.get()["large_files"]
    assert [e["path"] for e in entries] == ["models/model.pt", "models/model.ts"]
    for entry in entries:
        assert entry == {"path": entry["path"], "url": "", "hash_val": _sha256(packaged / entry["path"]),
                         "hash_type": "sha256"}
    _verify_bundle_directory(packaged)
    # the hash is checked: a changed byte fails the zoo's download step
    copy = shutil.copytree(packaged, tmp_path / "changed")
    data = bytearray((copy / "models" / "model.pt").read_bytes())
    data[-1] ^= 1
    (copy / "models" / "model.pt").write_bytes(bytes(data))
    with pytest.raises(HashCheckError):
        _verify_bundle_directory(copy)


@pytest.mark.slow
def test_eval_metrics_are_the_runs_best_validation_figure(packaged, trained):
    meta = json.loads((packaged / "configs" / "metadata.json").read_text())
    history = trained.client.get_metric_history(trained.run.info.run_id, "val_mean_iou")
    assert [m.step for m in history] == [1]  # one epoch: step = epoch
    assert meta["eval_metrics"] == {"val_mean_iou": history[0].value}
    record = meta[RUN_KEY]
    assert record["mlflow_run_id"] == trained.run.info.run_id and record["experiment_name"] == SKIN
    assert (record["key_metric"], record["best_epoch"], record["last_epoch"]) == ("val_mean_iou", 1, 1)
    assert record["best"] == record["last"] == history[0].value
    assert (record["seed"], record["num_threads"], record["epochs"], record["dataset"]) == (0, 1, 1, "synthetic")
    assert record["checkpoint_sha256"] == _sha256(packaged / "models" / "model.pt")
    assert record["command"] == (
        "OMP_NUM_THREADS=1 python -m monai.bundle run --config_file configs/train.json --bundle_root . --epochs 1 "
        "--batch_size 2 --image_size 32 --synthetic_samples 8 --in_channels 3"
    )
    shipped = json.loads((BUNDLES / SKIN / "configs" / "metadata.json").read_text())
    assert meta["version"] == "0.2.1" and shipped["version"] == "0.2.0"
    assert list(meta["changelog"]) == ["0.2.1", *shipped["changelog"]]
    assert trained.run.info.run_id in meta["changelog"]["0.2.1"]
    assert {k: v for k, v in meta.items() if k not in ("version", "changelog", "eval_metrics", RUN_KEY)} == {
        k: v for k, v in shipped.items() if k not in ("version", "changelog", "eval_metrics")
    }


@pytest.mark.slow
def test_metadata_passes_monais_verify_metadata_and_a_broken_one_does_not(packaged, tmp_path):
    _verify_metadata(packaged, tmp_path / "eval")
    broken = shutil.copytree(packaged / "configs", tmp_path / "broken" / "configs")
    meta = json.loads((broken / "metadata.json").read_text())
    meta["eval_metrics"] = [meta["eval_metrics"]]
    (broken / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="Failed validating"):
        _verify_metadata(broken.parent, tmp_path / "eval")


@pytest.mark.slow
def test_the_zoos_network_and_torchscript_checks_pass_on_inference_json(packaged, tmp_path):
    meta, config = str(packaged / "configs" / "metadata.json"), str(packaged / "configs" / "inference.json")
    verify_net_in_out(net_id="network_def", meta_file=meta, config_file=config, bundle_root=str(packaged))
    ckpt_export(net_id="network_def", filepath=str(tmp_path / "verify_model.ts"), meta_file=meta, config_file=config,
                ckpt_file=str(packaged / "models" / "model.pt"), bundle_root=str(packaged))
    assert (tmp_path / "verify_model.ts").is_file()


@pytest.mark.slow
def test_configs_carry_the_runs_network_overrides(packaged, trained):
    stored = json.loads((trained.run_dir / "models" / "network_config.json").read_text())["overrides"]
    for name in ("train.json", "inference.json"):
        config = json.loads((packaged / "configs" / name).read_text())
        assert config["image_size"] == 32 and config["image_channels"] == 3
        assert config["network_def"]["_target_"] == stored["network_def#_target_"] == "monai_srb.nets.srb_unet.SRBUNet"
        assert {k: config[k] for k in stored if "#" not in k} == {k: v for k, v in stored.items() if "#" not in k}
    for name in ("evaluate.json", "multi_gpu_train.json", "multi_gpu_evaluate.json"):  # they define no network id
        assert json.loads((packaged / "configs" / name).read_text()) == json.loads(
            (BUNDLES / SKIN / "configs" / name).read_text()
        )


@pytest.mark.slow
def test_docs_say_what_was_packaged_and_the_datas_licence(packaged, trained):
    readme = (packaged / "docs" / "README.md").read_text()
    shipped = (BUNDLES / SKIN / "docs" / "README.md").read_text()
    assert readme.startswith("# SRB skin lesion segmentation\n\n## This packaged model (version 0.2.1)\n")
    assert trained.run.info.run_id in readme and readme.endswith(shipped.split("\n", 1)[1])
    licence = (packaged / "docs" / "data_license.txt").read_text()
    assert licence.startswith("Third Party Licenses\n") and "trained on synthetic data only" in licence
    for name in ("ISIC", "PH2", "HC18", "CC BY 4.0"):
        assert name in licence


def _images(folder: Path) -> list[str]:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("a.png", (40, 30)), ("b.jpg", (30, 40))):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / name)
    return ["a_segmentation.png", "b_segmentation.png"]


@pytest.mark.slow
def test_inference_json_alone_reads_models_model_pt_with_no_ckpt_path(packaged, trained, tmp_path):
    expected = _images(tmp_path / "in")
    before = _files(packaged)
    run(config_file=str(packaged / "configs" / "inference.json"), bundle_root=str(packaged), logging_file=False,
        input_dir=str(tmp_path / "in"), output_dir=str(tmp_path / "out"), prediction_dir=str(tmp_path / "pred"))
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == expected
    assert _files(packaged) == before
    # the same masks as the source bundle's inference, given the run's checkpoint and sizes
    run(config_file=[str(BUNDLES / SKIN / "configs" / f"{n}.json") for n in ("train", "inference")],
        bundle_root=str(BUNDLES / SKIN), logging_file=False, ckpt_path=str(trained.run_dir / "models" / "model.pt"),
        input_dir=str(tmp_path / "in"), output_dir=str(tmp_path / "src"), prediction_dir=str(tmp_path / "src_pred"),
        **TINY)
    for name in expected:
        assert (tmp_path / "pred" / name).read_bytes() == (tmp_path / "src_pred" / name).read_bytes()


def test_the_shipped_inference_configs_read_the_zoos_checkpoint_place():
    for bundle in (SKIN, CHEST, SEG3D):
        parser = ConfigParser()
        parser.read_config(str(BUNDLES / bundle / "configs" / "inference.json"))
        parser.update({"bundle_root": "/b"})
        assert parser.get_parsed_content("ckpt_path") == "/b/models/model.pt", bundle


# --- refusals: each names what it got, and nothing is written or lost ---


def _copy_run(trained: SimpleNamespace, folder: Path) -> Path:
    return Path(shutil.copytree(trained.run_dir, folder, ignore=shutil.ignore_patterns("synthetic_data", "figures")))


@pytest.mark.slow
@pytest.mark.parametrize(
    "remove,message",
    [
        ("models/model.pt", "holds no models/model.pt (its best checkpoint; looked for {run}/models/model.pt)"),
        ("models/network_config.json", "holds no models/network_config.json (the network overrides"),
        ("mlflow.db", "holds no MLflow store (looked for {run}/mlflow.db)"),
    ],
)
def test_a_run_folder_without_its_checkpoint_or_store_is_named(trained, tmp_path, remove, message):
    run_dir = _copy_run(trained, tmp_path / "run")
    (run_dir / remove).unlink()
    with pytest.raises(ValueError, match="argument --run_dir: ") as error:
        package_run(run_dir, BUNDLES / SKIN, tmp_path / "out", num_threads=1)
    assert message.format(run=run_dir) in str(error.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_non_empty_target_is_refused_and_replaced_only_with_overwrite(trained, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=f"argument --out_dir: '{out}' is not empty .*pass --overwrite"):
        package_run(trained.run_dir, BUNDLES / SKIN, out, num_threads=1, torchscript=False)
    assert _files(out) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    package_run(trained.run_dir, BUNDLES / SKIN, out, num_threads=1, torchscript=False, overwrite=True)
    assert "notes.txt" not in _files(out) and "models/model.ts" not in _files(out)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left


@pytest.mark.slow
def test_a_failure_while_writing_leaves_the_target_as_it_was(trained, tmp_path):
    run_dir = _copy_run(trained, tmp_path / "run")
    stored = json.loads((run_dir / "models" / "network_config.json").read_text())
    stored["overrides"]["features"] = [8, 16, 32, 64, 128, 8]  # not the network the checkpoint holds
    (run_dir / "models" / "network_config.json").write_text(json.dumps(stored))
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="configs/inference.json does not build the network the run trained"):
        package_run(run_dir, BUNDLES / SKIN, out, num_threads=1, torchscript=False, overwrite=True)
    assert _files(out) == ["notes.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["out", "run"]


@pytest.mark.slow
def test_a_checkpoint_no_run_logged_and_a_missing_thread_count_are_refused(trained, tmp_path):
    run_dir = _copy_run(trained, tmp_path / "run")
    with pytest.raises(ValueError, match="records no thread count: pass --num_threads"):
        package_run(run_dir, BUNDLES / SKIN, tmp_path / "out")
    torch.save({"model": {"w": torch.zeros(1)}}, run_dir / "models" / "model.pt")
    sha = file_sha256(str(run_dir / "models" / "model.pt"))
    with pytest.raises(ValueError, match=f"logged the checkpoint {run_dir}/models/model.pt \\(sha256 {sha}.*--run_id"):
        package_run(run_dir, BUNDLES / SKIN, tmp_path / "out", num_threads=1)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_target_holding_the_bundle_or_the_run_is_refused(trained, tmp_path):
    with pytest.raises(ValueError, match="argument --out_dir: .* holds the --run_dir folder"):
        package_run(trained.run_dir, BUNDLES / SKIN, trained.run_dir.parent, num_threads=1, overwrite=True)
    with pytest.raises(ValueError, match="argument --out_dir: .* holds the --bundle_root folder"):
        package_run(trained.run_dir, BUNDLES / SKIN, BUNDLES, num_threads=1, overwrite=True)


# --- the other bundles, from a store written as a training run writes it (no training: seconds) ---

HANDMADE = {
    SEG3D: ({"patch_size": [32, 32, 32], "features": [8, 8, 16, 32, 64, 8]}, "Dice"),
    CHEST: ({"image_size": 32}, "AUC"),
}


def _handmade_run(bundle: str, run_dir: Path, values: list[float], finished: bool = True) -> str:
    """``run_dir`` as a training run of ``bundle`` leaves it: checkpoint, network overrides, an MLflow run."""
    overrides, metric = HANDMADE[bundle]
    parser = ConfigParser()
    parser.read_config(str(BUNDLES / bundle / "configs" / "train.json"))
    parser.update({"bundle_root": str(BUNDLES / bundle), "output_dir": str(run_dir), **overrides})
    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def")
    save_network_config(str(run_dir / "models"), parser.get_parsed_content("network_overrides"), network)
    torch.save(network.state_dict(), run_dir / "models" / "model.pt")
    uri = default_tracking_uri(str(run_dir))
    client = mlflow.MlflowClient(uri)
    experiment = get_or_create_experiment(client, bundle, sqlite_artifact_location(uri))
    run_id = client.create_run(experiment.experiment_id).info.run_id
    for key, value in {"seed": 3, "epochs": len(values), "dataset_dir": "None"}.items():
        client.log_param(run_id, key, value)
    for epoch, value in enumerate(values, start=1):
        client.log_metric(run_id, metric, value, step=epoch)
    client.set_tag(run_id, "dataset", "synthetic")
    client.set_tag(run_id, CHECKPOINT_SHA256_TAG, file_sha256(str(run_dir / "models" / "model.pt")))
    if finished:
        client.set_terminated(run_id)
    return run_id


@pytest.fixture(scope="module")
def handmade(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SimpleNamespace]:
    """A run folder of the 3D and the chest bundle each, whose key metric peaks at epoch 2 of 4."""
    runs = {}
    for bundle in HANDMADE:
        run_dir = tmp_path_factory.mktemp(f"handmade_{bundle}")
        runs[bundle] = SimpleNamespace(run_dir=run_dir, run_id=_handmade_run(bundle, run_dir, [0.25, 0.5, 0.5, 0.375]))
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("bundle", [SEG3D, CHEST])
def test_the_other_bundles_package_with_their_key_metric_and_overrides(bundle, handmade, tmp_path):
    out = package_run(handmade[bundle].run_dir, BUNDLES / bundle, tmp_path / bundle, num_threads=2, torchscript=False)
    configs = sorted(f"configs/{p.name}" for p in (BUNDLES / bundle / "configs").iterdir())
    assert _files(out) == sorted(configs + ["LICENSE", "docs/README.md", "docs/data_license.txt", "large_files.yml",
                                            "models/model.pt"])
    overrides, metric = HANDMADE[bundle]
    meta = json.loads((out / "configs" / "metadata.json").read_text())
    assert meta["eval_metrics"] == {metric: 0.5}
    assert {k: meta[RUN_KEY][k] for k in ("mlflow_run_id", "best_epoch", "last_epoch", "last", "seed", "num_threads")} \
        == {"mlflow_run_id": handmade[bundle].run_id, "best_epoch": 2, "last_epoch": 4, "last": 0.375, "seed": 3,
            "num_threads": 2}
    inference = json.loads((out / "configs" / "inference.json").read_text())
    assert {k: inference[k] for k in overrides} == overrides
    _verify_bundle_directory(out)
    _verify_metadata(out, tmp_path / "eval")
    verify_net_in_out(net_id="network_def", meta_file=str(out / "configs" / "metadata.json"),
                      config_file=str(out / "configs" / "inference.json"), bundle_root=str(out))


@pytest.mark.slow
def test_a_run_that_did_not_finish_is_refused(handmade, tmp_path):
    run_dir = Path(shutil.copytree(handmade[SEG3D].run_dir, tmp_path / "run"))
    mlflow.MlflowClient(default_tracking_uri(str(run_dir))).update_run(handmade[SEG3D].run_id, status="RUNNING")
    message = f"MLflow run {handmade[SEG3D].run_id} of sqlite:///.* is RUNNING, not FINISHED: package a finished run"
    with pytest.raises(ValueError, match=message):
        package_run(run_dir, BUNDLES / SEG3D, tmp_path / "out", num_threads=1)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_metric_the_run_did_not_log_names_the_ones_it_did(handmade, tmp_path):
    with pytest.raises(ValueError, match=r"logged no metric 'val_dice' \(its metrics: \['Dice'\]\); pass --metric"):
        package_run(handmade[SEG3D].run_dir, BUNDLES / SEG3D, tmp_path / "out", num_threads=1, metric="val_dice")
    assert not (tmp_path / "out").exists()
