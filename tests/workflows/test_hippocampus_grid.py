from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from monai.bundle import ConfigParser, run

from workflows.grid import load_grid, plan

ROOT = Path(__file__).resolve().parents[2]
GRID = ROOT / "workflows" / "grids" / "hippocampus.json"

pytestmark = pytest.mark.filterwarnings("ignore:parsing config_file:UserWarning")


def _bundle_files(grid: dict) -> list[str]:
    return [str(ROOT / grid["bundle"] / c) for c in grid["configs"]]


def test_cpu_preset_plans_every_variant_on_one_split_for_three_seeds():
    grid = load_grid(GRID)
    jobs = plan(grid, "cpu")
    assert len(jobs) == 6 * 3 and sorted({j.seed for j in jobs}) == [0, 1, 2]
    # the validation set is fixed by split_seed, never by the training seed
    assert {(j.overrides["split_seed"], j.overrides["val_fraction"]) for j in jobs} == {(0, 0.2)}
    assert {j.overrides["dataset_dir"] for j in jobs} == {"../shared/data/msd_hippocampus"}
    assert all(j.overrides["patch_size"][i] % 16 == 0 for j in jobs for i in range(3))
    # each variant is paired with the U-Net of its own norm, and both norms are covered
    norms = {v: spec["norm"] for v, spec in grid["variants"].items()}
    assert set(norms.values()) == {"batch", "instance"}
    assert all(norms[v] == norms[base] for v, base in grid["baselines"].items())
    assert {"Dice_anterior", "Dice_posterior"} <= set(grid["metrics"]) and grid["key_metric"] == "Dice"


def test_grid_overrides_address_the_bundles_handlers():
    grid = load_grid(GRID)
    parser = ConfigParser()
    parser.read_config(_bundle_files(grid))
    targets = {key: parser[key.rsplit("#", 1)[0]]["_target_"] for key in grid["overrides"] if key.startswith("train#")}
    assert targets == {
        "train#mlflow_handler#artifacts": "SRBMLFlowHandler",
        "train#mlflow_handler#artifact_folders": "SRBMLFlowHandler",
        "train#mlflow_handler#model_checkpoint": "SRBMLFlowHandler",
        "train#stats_handler#iteration_log": "StatsHandler",
        "train#progress_bar#_disabled_": "ignite.handlers.ProgressBar",
    }


@pytest.mark.slow
def test_a_smoke_job_trains_through_the_bundle_and_logs_per_class_dice(tmp_path):
    grid = load_grid(GRID)
    (job,) = plan(grid, "smoke", variants=["U-Net + SRB_F (batch norm)"])
    run(
        config_file=_bundle_files(grid),
        logging_file=False,
        bundle_root=str(ROOT / grid["bundle"]),
        output_dir=str(tmp_path),
        **job.overrides,
    )
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (train_run,) = client.search_runs([client.get_experiment_by_name("srb_3d_segmentation").experiment_id])
    assert train_run.info.status == "FINISHED" and train_run.data.params["norm"] == "batch"
    # the synthetic data names its classes organ and lesion; the real data anterior and posterior
    assert {"Dice", "Dice_organ", "Dice_lesion"} <= set(train_run.data.metrics)
    assert not list(tmp_path.glob("models/checkpoint_epoch=*.pt"))[1:]  # keep_checkpoints 1
