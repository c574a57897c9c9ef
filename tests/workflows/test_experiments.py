from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GRIDS = sorted((ROOT / "workflows" / "grids").glob("*.json"))


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"srb_{name}", ROOT / "workflows" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _record(rx, variant, seed, fold, ious, status="FINISHED"):
    return rx.RunRecord(variant, seed, fold, status, {"val_mean_iou": dict(enumerate(ious, 1))}, wall_s=60.0)


@pytest.mark.parametrize("grid", GRIDS, ids=lambda p: p.stem)
def test_grids_name_their_variants_and_have_the_three_presets(grid):
    rx = _load("run_experiments")
    g = rx.load_grid(grid)
    assert {"smoke", "cpu", "full"} <= set(g["presets"])
    assert g["baseline"] in g["variants"]
    for preset in g["presets"]:
        jobs = rx.plan(g, preset)
        assert jobs and all(j.overrides["seed"] == j.seed for j in jobs)
    slugs = [rx.Job(v, 0, 0, {}).slug for v in g["variants"]]
    assert len(set(slugs)) == len(slugs)  # one run folder per variant


def test_folds_are_averaged_within_a_seed_before_the_spread_over_seeds():
    rx = _load("run_experiments")
    records = [
        # baseline: seed 0 folds 0.6 / 0.8 -> 0.7; seed 1 folds 0.5 / 0.7 -> 0.6
        _record(rx, "U-Net", 0, 0, [0.5, 0.6]),
        _record(rx, "U-Net", 0, 1, [0.9, 0.8]),
        _record(rx, "U-Net", 1, 0, [0.5]),
        _record(rx, "U-Net", 1, 1, [0.7]),
        # +0.1 on every pair
        _record(rx, "SRB", 0, 0, [0.7]),
        _record(rx, "SRB", 0, 1, [0.9]),
        _record(rx, "SRB", 1, 0, [0.6]),
        _record(rx, "SRB", 1, 1, [0.8]),
        _record(rx, "SRB", 2, 0, [0.0], status="FAILED"),
    ]
    rows = rx.summarise(records, ["val_mean_iou"], "val_mean_iou", "U-Net", ["U-Net", "SRB"])
    base, srb = rows
    assert (base.runs, base.seeds, base.folds) == (4, 2, 2)
    assert base.last["val_mean_iou"].mean == pytest.approx(0.65)
    assert base.last["val_mean_iou"].std == pytest.approx(0.0707107, rel=1e-4)
    # best epoch: seed 0 -> (0.6 + 0.9) / 2, seed 1 -> 0.6
    assert base.best["val_mean_iou"].mean == pytest.approx(0.675)
    assert srb.failed == 1 and srb.runs == 4
    assert srb.delta.mean == pytest.approx(0.1) and srb.delta.std == pytest.approx(0.0, abs=1e-9)
    assert srb.wins == (4, 4) and srb.significant
    table = rx.format_table(rows, ["val_mean_iou"], "val_mean_iou", "U-Net")
    lines = table.splitlines()
    assert len(lines) == 4 and lines[3].startswith("| SRB | 4 (2 x 2), 1 failed | 75.0 ± 7.1")
    assert "+10.0 ± 0.0 | 4/4 | no |" in lines[3]


def test_a_difference_smaller_than_its_spread_is_inside_the_noise():
    rx = _load("run_experiments")
    records = [_record(rx, "U-Net", s, None, [0.6]) for s in range(3)]
    records += [_record(rx, "SRB", s, None, [v]) for s, v in enumerate([0.62, 0.57, 0.62])]
    _, srb = rx.summarise(records, ["val_mean_iou"], "val_mean_iou", "U-Net")
    assert srb.wins == (2, 3) and srb.significant is False


def test_smoke_preset_runs_end_to_end_and_reports_from_mlflow(tmp_path):
    rx = _load("run_experiments")
    grid_file = ROOT / "workflows" / "grids" / "isic_table1.json"
    text = rx.main(["--grid", str(grid_file), "--preset", "smoke", "--out", str(tmp_path), "--threads", "1"])
    grid = rx.load_grid(grid_file)
    variants = rx.preset_variants(grid, "smoke")
    table = [line for line in text.splitlines() if line.startswith("| ")][1:]
    assert [line.split(" | ")[0][2:] for line in table] == variants
    assert all(f"| {len(grid['presets']['smoke']['seeds'])} (" in line for line in table)
    assert (tmp_path / "summary.png").stat().st_size > 0
    assert (tmp_path / "results.md").read_text().endswith(text.split("\n\n", 1)[1])

    # every run is in MLflow with its tags; a second call skips them and reports the same table
    import mlflow

    client = mlflow.MlflowClient(rx.tracking_uri(tmp_path))
    runs = client.search_runs([client.get_experiment_by_name("isic_table1__smoke").experiment_id])
    assert sorted((r.data.tags["srb.variant"], r.data.tags["srb.seed"]) for r in runs) == sorted(
        (v, str(s)) for v in variants for s in grid["presets"]["smoke"]["seeds"]
    )
    assert all(r.info.status == "FINISHED" and "val_mean_iou" in r.data.metrics for r in runs)
    assert rx.main(["--grid", str(grid_file), "--preset", "smoke", "--out", str(tmp_path)]) == text
    # a report covers only the seeds and variants asked for
    some = rx.main(["--grid", str(grid_file), "--preset", "smoke", "--out", str(tmp_path), "--report-only",
                    "--seeds", "0", "--variants", *variants[:2]])
    rows = [line for line in some.splitlines() if line.startswith("| ")][1:]
    assert [line.split(" | ")[0][2:] for line in rows] == variants[:2]
    assert all(line.split(" | ")[1] == "1 (1 x 1)" for line in rows)

    figures = _load("figures")
    result = figures.main(
        ["--out", str(tmp_path), "--variants", variants[0], variants[-1], "--seed", "0", "--figures",
         str(tmp_path / "fig"), "--erf-size", "64"]
    )
    for name in ("overlays.png", "erf.png", "erf.json"):
        assert (tmp_path / "fig" / name).stat().st_size > 0
    assert len(result["alpha"][variants[-1]]) == 4 and not result["alpha"][variants[0]]
    assert all(0.0 < eff <= reach <= 1.0 for reach, eff in result["erf"].values())
    assert json.loads((tmp_path / "fig" / "erf.json").read_text())["alpha"] == result["alpha"]


def test_workers_share_the_jobs_and_the_report_reads_every_store(tmp_path):
    rx = _load("run_experiments")
    grid_file = ROOT / "workflows" / "grids" / "isic_table1.json"
    args = ["--grid", str(grid_file), "--preset", "smoke", "--out", str(tmp_path), "--threads", "1"]
    text = rx.main(args + ["--workers", "2", "--variants", "U-Net", "U-Net + 1 SRB_F"])
    table = [line for line in text.splitlines() if line.startswith("| ")][1:]
    assert [line.split(" | ")[:2] for line in table] == [["| U-Net", "2 (2 x 1)"], ["| U-Net + 1 SRB_F", "2 (2 x 1)"]]
    assert [p.name for p in rx.stores(tmp_path)] == ["0", "1"]  # the parent trained nothing itself
    jobs = [json.loads((tmp_path / "workers" / k / "jobs.json").read_text()) for k in ("0", "1")]
    assert sorted((j["variant"], j["seed"]) for js in jobs for j in js) == [
        ("U-Net", 0), ("U-Net", 1), ("U-Net + 1 SRB_F", 0), ("U-Net + 1 SRB_F", 1)
    ]
    assert len({p.name for p in (tmp_path / "runs").iterdir()}) == 4  # run folders stay in <out>/runs
    # every job is found finished in the workers' stores: a second call trains nothing
    assert rx.finished_jobs(rx.load_grid(grid_file), "smoke", tmp_path) == {(j["variant"], j["seed"], None) for js in jobs for j in js}


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_workers_below_one_is_a_usage_error(tmp_path, workers, capsys):
    rx = _load("run_experiments")
    grid_file = ROOT / "workflows" / "grids" / "isic_table1.json"
    with pytest.raises(SystemExit) as e:
        rx.main(["--grid", str(grid_file), "--preset", "smoke", "--out", str(tmp_path), "--workers", workers])
    assert e.value.code == 2 and f"--workers must be at least 1, got {workers}" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


def test_srb_tuning_sets_alpha_and_gives_the_spectral_branch_its_own_learning_rate():
    tuning = _load("srb_tuning")
    from monai_srb.nets import SRBUNet

    net = tuning.init_srbs(SRBUNet(2, 3, 2, features=(4, 4, 4, 4, 4, 4), srb_positions=["before_up4", "after_up1"]), 0.1)
    alphas = [m.alpha.item() for m in net.modules() if hasattr(m, "alpha")]
    assert alphas == pytest.approx([0.1, 0.1])
    groups = tuning.param_groups(net, 1e-3, spectral_lr_mult=10.0, spectral_weight_decay=0.0)
    assert [g.get("lr") for g in groups] == [None, pytest.approx(1e-2)] and groups[1]["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    assert sum(p.numel() for p in groups[1]["params"]) == sum(
        p.numel() for n, p in net.named_parameters() if n.startswith("srb_")
    )


def test_a_rerun_replaces_the_earlier_run_of_the_same_job():
    rx = _load("run_experiments")
    old = _record(rx, "U-Net", 0, 1, [0.5])
    failed = _record(rx, "U-Net", 0, 1, [0.1], status="FAILED")
    new = _record(rx, "U-Net", 0, 1, [0.7])
    other = _record(rx, "U-Net", 1, 1, [0.6], status="FAILED")
    old.start_time, failed.start_time, new.start_time, other.start_time = 1, 3, 2, 1
    kept = rx.latest_per_job([new, failed, old, other])
    assert sorted((r.seed, r.last("val_mean_iou")) for r in kept) == [(0, 0.7), (1, 0.6)]


def test_each_variant_can_be_paired_with_its_own_baseline():
    rx = _load("run_experiments")
    records = [_record(rx, v, 0, None, [x]) for v, x in [("A", 0.5), ("A+SRB", 0.6), ("B", 0.8), ("B+SRB", 0.7)]]
    rows = rx.summarise(records, ["val_mean_iou"], "val_mean_iou", {"A+SRB": "A", "B+SRB": "B"}, ["A", "A+SRB", "B", "B+SRB"])
    assert [None if r.delta is None else round(r.delta.mean, 6) for r in rows] == [None, 0.1, None, -0.1]
    assert "Δ mean_iou vs its baseline" in rx.format_table(rows, ["val_mean_iou"], "val_mean_iou", {"A+SRB": "A"})
