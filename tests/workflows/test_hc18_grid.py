from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow

from workflows.grid import load_grid, plan, preset_variants

ROOT = Path(__file__).resolve().parents[2]
GRID = ROOT / "workflows" / "grids" / "hc18.json"


def _norms(network: torch.nn.Module) -> set[str]:
    return {type(m).__name__ for m in network.modules() if type(m).__name__.endswith("Norm2d")}


def test_hc18_grid_loads_and_pairs_each_norm_with_its_own_u_net():
    grid = load_grid(GRID)
    assert {"smoke", "cpu_128", "cpu_256"} <= set(grid["presets"])
    assert {"val_dice", "val_hc_error_mm"} <= set(grid["metrics"])
    for variant, overrides in grid["variants"].items():
        if overrides["srb_positions"]:
            baseline = grid["variants"][grid["baselines"].get(variant, grid["baseline"])]
            assert not baseline["srb_positions"] and baseline["norm"] == overrides["norm"], variant
    # at least 10 paired runs per comparison at 128 px, one full fold set at 256 px
    cpu_128, cpu_256 = plan(grid, "cpu_128"), plan(grid, "cpu_256")
    assert len({(j.seed, j.fold) for j in cpu_128}) >= 10 and {j.overrides["image_size"] for j in cpu_128} == {128}
    assert {j.fold for j in cpu_256} == set(range(5)) and {j.overrides["image_size"] for j in cpu_256} == {256}
    assert all(j.overrides["mask_pattern"] == "{id}_mask.png" for j in cpu_128 + cpu_256)


def test_hc18_smoke_preset_plans_and_builds_each_network(tmp_path):
    grid = load_grid(GRID)
    jobs = plan(grid, "smoke")
    assert [j.variant for j in jobs] == preset_variants(grid, "smoke") and all(j.seed == 0 for j in jobs)
    bundle = ROOT / grid["bundle"]
    for job in jobs:
        parser = ConfigParser()
        parser.read_config([str(bundle / c) for c in grid["configs"]])
        parser.update({**job.overrides, "bundle_root": str(bundle), "output_dir": str(tmp_path / job.slug)})
        network = parser.get_parsed_content("network_def")
        expected = {"batch": "BatchNorm2d", "instance": "InstanceNorm2d"}[job.overrides["norm"]]
        assert expected in _norms(network.conv_0)
        alphas = [name for name, _ in network.named_parameters() if name.endswith(".alpha")]
        assert len(alphas) == len(job.overrides["srb_positions"])


@pytest.mark.slow
def test_hc18_smoke_job_trains(tmp_path):
    grid = load_grid(GRID)
    (job,) = [j for j in plan(grid, "smoke") if j.variant == "U-Net + 4 SRB_F, batch norm"]
    bundle = ROOT / grid["bundle"]
    workflow = ConfigWorkflow(
        config_file=[str(bundle / c) for c in grid["configs"]], logging_file=False, workflow_type=None,
        **{**job.overrides, "bundle_root": str(bundle), "output_dir": str(tmp_path), "run_name": job.slug},
    )
    workflow.initialize()
    try:
        workflow.run()
    finally:
        workflow.finalize()
    metrics = workflow.parser.get_parsed_content("validate#evaluator").state.metrics
    assert 0.0 <= metrics[grid["key_metric"]] <= 1.0
    assert (tmp_path / "models" / "model.pt").is_file()
