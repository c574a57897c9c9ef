from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from workflows import figures
from workflows.grid import Job, load_grid, plan, preset_variants, tracking_uri
from workflows.results import (
    RunRecord,
    format_table,
    latest_per_job,
    merge_uris,
    paired_deltas,
    paired_table,
    plot_summary,
    summarise,
)
from workflows.run_experiments import main
from workflows.runner import job_costs, longest_first, mlflow_server

ROOT = Path(__file__).resolve().parents[2]
GRIDS = sorted((ROOT / "workflows" / "grids").glob("*.json"))
ISIC = ROOT / "workflows" / "grids" / "isic_table1.json"


def _service_processes() -> set[tuple[int, str]]:
    """(pid, command line) of the Ray and MLflow server processes on this machine."""
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "/site-packages/ray/" in cmd or cmd.startswith("ray::") or "mlflow server" in cmd or "mlflow.server" in cmd:
            found.add((int(proc.name), cmd))
    return found


@pytest.fixture(autouse=True)
def no_leaked_processes():
    """Each test stops the Ray and MLflow processes it started (Ray's own shutdown takes a few seconds)."""
    before = _service_processes()
    yield
    deadline = time.time() + 30
    while (left := _service_processes() - before) and time.time() < deadline:
        time.sleep(0.5)
    assert not left, f"processes left running: {sorted(left)}"


def _record(variant, seed, fold, ious, status="FINISHED"):
    return RunRecord(variant, seed, fold, status, {"val_mean_iou": dict(enumerate(ious, 1))}, wall_s=60.0)


@pytest.mark.parametrize("grid", GRIDS, ids=lambda p: p.stem)
def test_grids_name_their_variants_and_have_the_three_presets(grid):
    g = load_grid(grid)
    assert {"smoke", "cpu", "full"} <= set(g["presets"])
    assert g["baseline"] in g["variants"]
    for preset in g["presets"]:
        jobs = plan(g, preset)
        assert jobs and all(j.overrides["seed"] == j.seed for j in jobs)
    slugs = [Job(v, 0, 0, {}).slug for v in g["variants"]]
    assert len(set(slugs)) == len(slugs)  # one run folder per variant


def test_folds_are_averaged_within_a_seed_before_the_spread_over_seeds():
    records = [
        # baseline: seed 0 folds 0.6 / 0.8 -> 0.7; seed 1 folds 0.5 / 0.7 -> 0.6
        _record("U-Net", 0, 0, [0.5, 0.6]),
        _record("U-Net", 0, 1, [0.9, 0.8]),
        _record("U-Net", 1, 0, [0.5]),
        _record("U-Net", 1, 1, [0.7]),
        # +0.1 on every pair
        _record("SRB", 0, 0, [0.7]),
        _record("SRB", 0, 1, [0.9]),
        _record("SRB", 1, 0, [0.6]),
        _record("SRB", 1, 1, [0.8]),
        _record("SRB", 2, 0, [0.0], status="FAILED"),
    ]
    rows = summarise(records, ["val_mean_iou"], "val_mean_iou", "U-Net", ["U-Net", "SRB"])
    base, srb = rows
    assert (base.runs, base.seeds, base.folds) == (4, 2, 2)
    assert base.last["val_mean_iou"].mean == pytest.approx(0.65)
    assert base.last["val_mean_iou"].std == pytest.approx(0.0707107, rel=1e-4)
    # best epoch: seed 0 -> (0.6 + 0.9) / 2, seed 1 -> 0.6
    assert base.best["val_mean_iou"].mean == pytest.approx(0.675)
    assert srb.failed == 1 and srb.runs == 4
    assert srb.delta.mean == pytest.approx(0.1) and srb.delta.std == pytest.approx(0.0, abs=1e-9)
    assert srb.wins == (4, 4) and srb.significant
    table = format_table(rows, ["val_mean_iou"], "val_mean_iou", "U-Net")
    lines = table.splitlines()
    assert len(lines) == 4 and lines[3].startswith("| SRB | 4 (2 x 2), 1 failed | 75.0 ± 7.1")
    assert "+10.0 ± 0.0 | 4/4 | no |" in lines[3]


def test_scores_are_shown_x100_and_errors_in_mm_as_they_are():
    history = {"val_mean_iou": {1: 0.75}, "val_hc_error_mm": {1: 4.25}}
    records = [RunRecord("U-Net", s, None, "FINISHED", history, wall_s=60.0) for s in range(2)]
    rows = summarise(records, ["val_mean_iou", "val_hc_error_mm"], "val_mean_iou", None, ["U-Net"])
    line = format_table(rows, ["val_mean_iou", "val_hc_error_mm"], "val_mean_iou", None).splitlines()[2]
    assert line.startswith("| U-Net | 2 (2 x 1) | 75.0 ± 0.0 | 4.2 ± 0.0 |"), line


PAIR_CASES = [
    # (SRB - U-Net per (seed, fold) pair in IoU, then the expected cells of its per-pair row)
    ([0.01, 0.01, 0.01, 0.01], ["+1.00 ± 0.00", "0.00", "4/4", "no", "+1.00, +1.00, +1.00, +1.00"]),
    ([0.02, -0.01, 0.005, -0.005], ["+0.25 ± 1.32", "0.66", "2/4", "yes", "+2.00, −1.00, +0.50, −0.50"]),
    ([-0.03], ["−3.00 ± 0.00", "—", "0/1", "n/a (1 pair)", "−3.00"]),
]


@pytest.mark.parametrize("diffs,cells", PAIR_CASES)
def test_the_per_pair_table_pairs_runs_by_seed_and_fold(diffs, cells):
    keys = [(0, 0), (0, 1), (1, 0), (1, 1)][: len(diffs)]
    history = lambda iou, mm: {"val_mean_iou": {1: 0.5, 2: iou}, "val_hc_error_mm": {2: mm}}  # noqa: E731
    records = [RunRecord("U-Net", s, f, "FINISHED", history(0.9, 4.0)) for s, f in keys]
    records += [RunRecord("SRB", s, f, "FINISHED", history(0.9 + d, 4.0 - 10 * d)) for (s, f), d in zip(keys, diffs)]
    records += [RunRecord("SRB", 5, 0, "FINISHED", history(0.1, 9.0))]  # no baseline run of seed 5: not a pair
    records += [RunRecord("U-Net", 0, 4, "FAILED", history(0.1, 9.0)), RunRecord("SRB", 0, 4, "FINISHED",
                                                                             history(0.1, 9.0))]
    metrics = ["val_mean_iou", "val_hc_error_mm"]
    lines = paired_table(records, metrics, "val_mean_iou", "U-Net", ["U-Net", "SRB"]).splitlines()
    assert lines[0].startswith("| variant | baseline | pairs | Δ mean_iou | Δ hc_error_mm | Δ best-epoch mean_iou")
    assert len(lines) == 3
    row = lines[2].strip("| ").split(" | ")
    assert row[:3] == ["SRB", "U-Net", str(len(diffs))]
    assert [row[3], *row[6:]] == cells
    assert row[5] == row[3]  # the last epoch is each run's best here
    hc = [-10 * d for d in diffs]  # the error moves in mm, as it is, the other way
    assert row[4].startswith(("+" if np.mean(hc) >= 0 else "−") + f"{abs(np.mean(hc)):.2f} ± ")


def test_the_per_pair_table_follows_each_variant_to_its_own_baseline_and_is_empty_without_one():
    # (best epoch, last epoch): A+SRB is ahead at the last epoch and behind at the best; B+SRB the other way
    curves = [("A", 0.9, 0.5), ("A+SRB", 0.7, 0.6), ("B", 0.7, 0.7), ("B+SRB", 0.8, 0.6)]
    records = [RunRecord(v, 0, f, "FINISHED", {"val_mean_iou": {1: best, 2: last}})
               for f in range(2) for v, best, last in curves]
    table = paired_table(records, ["val_mean_iou"], "val_mean_iou", {"A+SRB": "A", "B+SRB": "B"})
    rows = [line.strip("| ").split(" | ")[:5] for line in table.splitlines()[2:]]
    assert rows == [["A+SRB", "A", "2", "+10.00 ± 0.00", "−20.00 ± 0.00"],
                    ["B+SRB", "B", "2", "−10.00 ± 0.00", "+10.00 ± 0.00"]]
    assert paired_table(records, ["val_mean_iou"], "val_mean_iou", None) == ""


def test_the_summary_figure_is_a_forest_plot_of_the_paired_differences(tmp_path):
    # the pairs of the per-pair table: same (seed, fold), both FINISHED; a lone or failed run is no pair
    records = [_record("U-Net", s, f, [0.5, 0.80]) for s in range(2) for f in range(2)]
    records += [_record("SRB", s, f, [0.5, 0.80 + d]) for (s, f), d in zip([(0, 0), (0, 1), (1, 0), (1, 1)],
                                                                         [0.01, -0.02, 0.03, 0.0])]
    records += [_record("SRB", 5, 0, [0.1]), _record("U-Net", 6, 0, [0.1], status="FAILED")]
    deltas = paired_deltas(records, "val_mean_iou", "U-Net", ["U-Net", "SRB"])
    assert list(deltas) == ["SRB"] and deltas["SRB"][0] == "U-Net"
    assert deltas["SRB"][1] == pytest.approx([0.01, -0.02, 0.03, 0.0])
    rows = summarise(records, ["val_mean_iou"], "val_mean_iou", "U-Net", ["U-Net", "SRB"])
    plot_summary(rows, records, "val_mean_iou", tmp_path / "summary.png", "U-Net")
    plot_summary(rows, records, "val_mean_iou", tmp_path / "unpaired.png")  # no baseline: said on the panel
    assert (tmp_path / "summary.png").stat().st_size > 0 and (tmp_path / "unpaired.png").stat().st_size > 0


def test_a_difference_smaller_than_its_spread_is_inside_the_noise():
    records = [_record("U-Net", s, None, [0.6]) for s in range(3)]
    records += [_record("SRB", s, None, [v]) for s, v in enumerate([0.62, 0.57, 0.62])]
    _, srb = summarise(records, ["val_mean_iou"], "val_mean_iou", "U-Net")
    assert srb.wins == (2, 3) and srb.significant is False


def _first_table(text: str) -> list[str]:
    """The body lines of a report's first table (the grid table; the per-pair table follows it)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start + 2 : end]


def _table(text: str) -> list[list[str]]:
    """The rows of a report's grid table, without the header and the min/run column (a wall time)."""
    return [line.split(" | ")[:-1] for line in _first_table(text)]


@pytest.fixture(scope="module")
def sequential_smoke(tmp_path_factory):
    """The smoke preset trained without Ray (its import fails), one job after another in this process."""
    out = tmp_path_factory.mktemp("sequential")
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        mp.setitem(sys.modules, "ray", None)  # import ray raises ImportError
        text = main(["--grid", str(ISIC), "--preset", "smoke", "--out", str(out), "--threads", "1"])
    return out, text, printed.getvalue()


@pytest.mark.slow
def test_without_ray_the_smoke_preset_runs_in_process_and_reports_from_mlflow(sequential_smoke, capsys):
    out, text, printed = sequential_smoke
    assert 'Ray is not installed: the jobs run one after another in this process' in printed
    assert 'pip install -e ".[grid]"' in printed
    grid = load_grid(ISIC)
    variants = preset_variants(grid, "smoke")
    table = _first_table(text)
    assert [line.split(" | ")[0][2:] for line in table] == variants
    assert all(f"| {len(grid['presets']['smoke']['seeds'])} (" in line for line in table)
    assert (out / "summary.png").stat().st_size > 0
    assert (out / "results.md").read_text().endswith(text.split("\n\n", 1)[1])
    # one line per finished job: variant, seed, fold, key metric, minutes
    for v in variants:
        for s in grid["presets"]["smoke"]["seeds"]:
            line = rf"^{re.escape(v)} \| seed {s} \| fold None \| val_mean_iou 0\.\d{{4}} \| \d+\.\d min$"
            assert re.search(line, printed, re.M)
    # every job's output went to its log, not to the console
    assert "Epoch[2] Metrics" in (out / "runs" / "U_Net__s0" / "job.log").read_text() and "Epoch[" not in printed

    # every run is in the one MLflow store with its tags; the server that served it is gone
    import mlflow

    client = mlflow.MlflowClient(tracking_uri(out))
    runs = client.search_runs([client.get_experiment_by_name("isic_table1__smoke").experiment_id])
    assert sorted((r.data.tags["srb.variant"], r.data.tags["srb.seed"]) for r in runs) == sorted(
        (v, str(s)) for v in variants for s in grid["presets"]["smoke"]["seeds"]
    )
    assert all(r.info.status == "FINISHED" and "val_mean_iou" in r.data.metrics for r in runs)
    written = ["mlartifacts", "mlflow.db", "mlflow_server.log", "results.md", "runs", "summary.png"]
    assert sorted(p.name for p in out.iterdir()) == written  # no per-worker stores
    # a second call (Ray installed or not) finds every job FINISHED, trains nothing and reports the same table
    capsys.readouterr()
    assert main(["--grid", str(ISIC), "--preset", "smoke", "--out", str(out)]) == text
    assert f"{len(runs)} of {len(runs)} jobs are FINISHED in MLflow already: skipped" in capsys.readouterr().out
    # a report covers only the seeds and variants asked for
    some = main(["--grid", str(ISIC), "--preset", "smoke", "--out", str(out), "--report-only",
                    "--seeds", "0", "--variants", *variants[:2]])
    rows = _first_table(some)
    assert [line.split(" | ")[0][2:] for line in rows] == variants[:2]
    assert all(line.split(" | ")[1] == "1 (1 x 1)" for line in rows)

    result = figures.main(
        ["--out", str(out), "--variants", variants[0], variants[-1], "--seed", "0", "--figures",
         str(out / "fig"), "--erf-size", "64"]
    )
    for name in ("overlays.png", "erf.png", "erf.json"):
        assert (out / "fig" / name).stat().st_size > 0
    assert len(result["alpha"][variants[-1]]) == 4 and not result["alpha"][variants[0]]
    assert all(0.0 < eff <= reach <= 1.0 for reach, eff in result["erf"].values())
    assert json.loads((out / "fig" / "erf.json").read_text())["alpha"] == result["alpha"]


@pytest.mark.parametrize("grid", GRIDS, ids=lambda p: p.stem)
def test_every_grid_run_keeps_its_last_weights_as_its_mlflow_model(grid):
    # the bundle logs a model when model_input_shape is set (its default); null would drop it. The tables report
    # the last epoch, so the model holds the last weights (model_checkpoint null), not the best checkpoint's.
    g = load_grid(grid)
    for preset in g["presets"]:
        for job in plan(g, preset):
            assert job.overrides.get("train#mlflow_handler#model_input_shape", "default") is not None, job.slug
            assert "train#mlflow_handler#model_checkpoint" in job.overrides
            assert job.overrides["train#mlflow_handler#model_checkpoint"] is None, job.slug


@pytest.mark.slow
def test_any_results_row_reloads_as_the_network_that_scores_new_data(sequential_smoke, monkeypatch):
    import mlflow
    import torch

    out, text, _ = sequential_smoke
    client = mlflow.MlflowClient(tracking_uri(out))
    runs = client.search_runs([client.get_experiment_by_name("isic_table1__smoke").experiment_id])
    assert {r.data.tags["srb.variant"] for r in runs} == {row.split(" | ")[0][2:] for row in _first_table(text)}
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri(out))  # runs:/ URIs resolve through it
    x = np.random.default_rng(0).random((1, 3, 48, 64))  # a new image, of another size than the grid's 32 x 32
    for run in runs:
        network = mlflow.pytorch.load_model(f"runs:/{run.info.run_id}/model").eval()
        blocks = sum(name.endswith("alpha") for name, _ in network.named_parameters())
        assert blocks == {"U-Net": 0, "U-Net + 1 SRB_F": 1, "U-Net + 4 SRB_F": 4}[run.data.tags["srb.variant"]]
        scores = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model").predict(x)
        assert scores.shape == (1, 2, 48, 64) and np.isfinite(scores).all()
        with torch.no_grad():
            np.testing.assert_allclose(scores, network(torch.as_tensor(x, dtype=torch.float32)).numpy(), atol=1e-5)
        # the last epoch's weights: the best checkpoint's (saved at the first epoch of the highest score) exactly
        # when the last epoch is that epoch
        history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val_mean_iou")}
        best_epoch = min(step for step, value in history.items() if value == max(history.values()))
        best = torch.load(out / "runs" / run.info.run_name / "models" / "model.pt", weights_only=True)
        same = all(torch.equal(best[k], v) for k, v in network.state_dict().items())
        assert same == (best_epoch == max(history)), run.info.run_name


@pytest.mark.slow
def test_the_grid_mlflow_server_runs_no_job_consumers(tmp_path):
    # MLflow 3's server starts a job runner and seven polling huey consumers that took a quarter of a core
    # while idle; the grid's server turns them off.
    with mlflow_server(tmp_path) as uri:
        port = uri.rsplit(":", 1)[1]
        leader = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p).count(f"--port {port}")]
        group = {os.getpgid(int(p.name)) for p in leader}
        members = [_cmdline(p) for p in Path("/proc").iterdir() if p.name.isdigit() and _pgid(p) in group]
    assert any("mlflow server" in m for m in members)
    assert not [m for m in members if "huey" in m or "_job_runner" in m]


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _pgid(proc: Path) -> int | None:
    try:
        return os.getpgid(int(proc.name))
    except OSError:
        return None


def _runs(out: Path, experiment: str = "isic_table1__smoke") -> list:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri(out))
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    return client.search_runs([experiment_id], order_by=["attributes.start_time"])


@pytest.mark.slow
def test_two_ray_workers_give_the_sequential_table_value_for_value(sequential_smoke, tmp_path):
    pytest.importorskip("ray")
    text = main(["--grid", str(ISIC), "--preset", "smoke", "--out", str(tmp_path), "--cpus", "2", "--threads", "1"])
    assert _table(text) == _table(sequential_smoke[1])
    runs = _runs(tmp_path)
    assert len(runs) == 6 and all(r.info.status == "FINISHED" and r.data.tags["srb.ray_node"] for r in runs)
    # two at a time: some two runs overlap in time
    spans = [(r.info.start_time, r.info.end_time) for r in runs]
    assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1 :])
    # longest first: the network with most parameters (+ 4 SRB_F) starts first, in both slots
    assert [r.data.tags["srb.variant"] for r in runs[:2]] == ["U-Net + 4 SRB_F"] * 2


def test_jobs_start_longest_first_by_parameter_count():
    grid = load_grid(ISIC)
    grid["variants"]["U-Net"] = {"srb_positions": ["nowhere"]}  # cannot be built
    names = ["U-Net*", "U-Net", "U-Net + 1 Non-local", "U-Net + 4 SRB_F, dense phi (groups 1)", "U-Net + 1 SRB_F"]
    jobs = plan(grid, "smoke", variants=names)
    costs = job_costs(grid, jobs)
    assert costs == {"U-Net*": 1_850_130, "U-Net": float("inf"), "U-Net + 1 Non-local": 2_080_274,
                     "U-Net + 4 SRB_F, dense phi (groups 1)": 2_299_878, "U-Net + 1 SRB_F": 1_952_027}
    ordered = longest_first(jobs, costs)
    # the network that cannot be built first (its job fails early), then by decreasing size, seeds in order
    expected = [names[i] for i in (1, 3, 2, 4, 0)]
    assert [(j.variant, j.seed) for j in ordered] == [(v, s) for v in expected for s in (0, 1)]


@pytest.mark.slow
def test_a_failing_job_is_reported_and_recorded_failed_while_the_others_finish(tmp_path):
    pytest.importorskip("ray")
    grid = json.loads(ISIC.read_text())
    grid["variants"]["U-Net + 1 SRB_F"]["srb_positions"] = ["nowhere"]  # the injected bad override
    grid_file = tmp_path / "grid.json"
    grid_file.write_text(json.dumps(grid))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main(["--grid", str(grid_file), "--preset", "smoke", "--out", str(out), "--cpus", "2", "--seeds", "0"])
    assert str(e.value.code).startswith("1 of 3 jobs FAILED")
    assert "U-Net + 1 SRB_F seed 0 fold None: " in str(e.value.code)
    assert "nowhere" in str(e.value.code)
    runs = {r.data.tags["srb.variant"]: r for r in _runs(out)}
    assert {v: r.info.status for v, r in runs.items()} == {
        "U-Net": "FINISHED", "U-Net + 1 SRB_F": "FAILED", "U-Net + 4 SRB_F": "FINISHED"
    }
    assert "Traceback (most recent call last)" in runs["U-Net + 1 SRB_F"].data.tags["srb.error"]
    assert "nowhere" in runs["U-Net + 1 SRB_F"].data.tags["srb.error"]
    table = {row[0][2:]: row[1] for row in _table((out / "results.md").read_text())}
    assert table == {"U-Net": "1 (1 x 1)", "U-Net + 1 SRB_F": "0 (0 x 0), 1 failed", "U-Net + 4 SRB_F": "1 (1 x 1)"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_two_node_ray_cluster_runs_the_grid_through_address(tmp_path):
    pytest.importorskip("ray")
    ray_bin = Path(sys.executable).parent / "ray"
    port = _free_port()
    # token authentication needs the token on every node; one machine's test cluster does without. The nodes
    # start elsewhere and without the repository on their path: the runner hands it to the workers it uses.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(RAY_AUTH_MODE="disabled", OMP_NUM_THREADS="1")
    common = ["--num-cpus", "1", "--block", "--node-ip-address", "127.0.0.1"]
    nodes = []
    try:
        for k, args in enumerate([["--head", "--port", str(port), "--include-dashboard", "false"],
                                  ["--address", f"127.0.0.1:{port}"]]):
            node_dir = tmp_path / f"node{k}"
            node_dir.mkdir()
            log = open(node_dir / "ray.log", "w")
            nodes.append(subprocess.Popen([str(ray_bin), "start", *args, *common], cwd=node_dir, env=env, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True))
            log.close()
            _wait_for(node_dir / "ray.log", "block forever", nodes[-1])
        out = tmp_path / "out"
        done = subprocess.run(
            [sys.executable, "-m", "workflows.run_experiments", "--grid", str(ISIC), "--preset", "smoke",
             "--out", str(out), "--address", f"127.0.0.1:{port}", "--variants", "U-Net", "U-Net + 1 SRB_F"],
            cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=600,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        runs = _runs(out)
        assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
        assert len({r.data.tags["srb.ray_node"] for r in runs}) == 2  # one core per node: both nodes trained
        expected = [["| U-Net", "2 (2 x 1)"], ["| U-Net + 1 SRB_F", "2 (2 x 1)"]]
        assert [row[:2] for row in _table(done.stdout)] == expected
    finally:
        for node in reversed(nodes):  # `ray start --block` stops its node's processes on SIGTERM
            node.terminate()
        for node in nodes:
            try:
                node.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)


def _wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while text not in log.read_text():
        if proc.poll() is not None or time.time() > deadline:
            raise AssertionError(f"ray start did not come up: {log.read_text()[-2000:]}")
        time.sleep(0.5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--threads", "0"], "--threads must be at least 1, got 0"),
        (["--cpus", "-1"], "--cpus must be at least 1, got -1"),
        (["--cpus", "2", "--address", "auto"], "--cpus sizes the Ray started here; the cluster at --address auto"),
    ],
)
def test_bad_resources_are_usage_errors(tmp_path, args, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--grid", str(ISIC), "--preset", "smoke", "--out", str(tmp_path), *args])
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


def test_merge_reads_the_stores_of_earlier_versions(tmp_path):
    for store in ("mlflow.db", "workers/0/mlflow.db", "workers/1/mlflow.db"):
        (tmp_path / store).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / store).touch()
    assert merge_uris(str(tmp_path)) == [
        f"sqlite:///{(tmp_path / s).resolve()}" for s in ("mlflow.db", "workers/0/mlflow.db", "workers/1/mlflow.db")
    ]
    assert merge_uris("http://10.0.0.1:5000") == ["http://10.0.0.1:5000"]
    with pytest.raises(ValueError, match=r"--merge '.*empty'.*found none"):
        merge_uris(str(tmp_path / "empty"))


def test_a_rerun_replaces_the_earlier_run_of_the_same_job():
    old = _record("U-Net", 0, 1, [0.5])
    failed = _record("U-Net", 0, 1, [0.1], status="FAILED")
    new = _record("U-Net", 0, 1, [0.7])
    other = _record("U-Net", 1, 1, [0.6], status="FAILED")
    old.start_time, failed.start_time, new.start_time, other.start_time = 1, 3, 2, 1
    kept = latest_per_job([new, failed, old, other])
    assert sorted((r.seed, r.last("val_mean_iou")) for r in kept) == [(0, 0.7), (1, 0.6)]


def test_each_variant_can_be_paired_with_its_own_baseline():
    records = [_record(v, 0, None, [x]) for v, x in [("A", 0.5), ("A+SRB", 0.6), ("B", 0.8), ("B+SRB", 0.7)]]
    baselines = {"A+SRB": "A", "B+SRB": "B"}
    rows = summarise(records, ["val_mean_iou"], "val_mean_iou", baselines, ["A", "A+SRB", "B", "B+SRB"])
    assert [None if r.delta is None else round(r.delta.mean, 6) for r in rows] == [None, 0.1, None, -0.1]
    assert "Δ mean_iou vs its baseline" in format_table(rows, ["val_mean_iou"], "val_mean_iou", {"A+SRB": "A"})


def _tiny_grid() -> dict:
    """A valid grid of two variants and two presets, for breaking one key at a time."""
    return {
        "_doc_": "a comment",
        "name": "tiny", "bundle": "bundles/srb_skin_lesion_segmentation", "configs": ["configs/train.json"],
        "run_name_ids": ["run_name"], "key_metric": "val_dice", "metrics": ["val_dice", "val_mean_iou"],
        "baseline": "U-Net", "baselines": {"U-Net + SRB_F": "U-Net"},
        "variants": {"U-Net": {}, "U-Net + SRB_F": {"block": "srb_fft"}},
        "presets": {
            "smoke": {"variants": ["U-Net", "U-Net + SRB_F"], "seeds": [0, 1], "folds": [0, 1],
                      "overrides": {"num_folds": 2}, "comparisons": [["U-Net + SRB_F", "U-Net"]]},
            "more": {"experiment": "smoke", "variants": "*", "seeds": [2], "overrides": {"num_folds": 2}},
        },
    }


_DROP = object()  # the value of a _set that deletes the key


def _set(*keys_and_value):
    """An edit of the tiny grid: set grid[k1][k2]... to the value, or delete the key when the value is _DROP."""
    *keys, value = keys_and_value

    def edit(grid: dict) -> None:
        for key in keys[:-1]:
            grid = grid[key]
        if value is _DROP:
            del grid[keys[-1]]
        else:
            grid[keys[-1]] = value

    return edit


SEEDS = ": preset 'smoke' 'seeds' must be a non-empty list of integers >= 0, got "
VARIANTS = "the grid's variants are ['U-Net', 'U-Net + SRB_F']"
# (case, edit of the tiny grid, text the error must hold after "grid <file>")
BAD_GRIDS = [
    ("missing key", _set("metrics", _DROP), " lacks the key(s) ['metrics']; a grid has the keys ['name', "),
    ("misspelt key", _set("baselnes", {}), ": the grid has the unknown key(s) ['baselnes']; expected keys among"),
    ("unknown baseline", _set("baseline", "UNet"), f": 'baseline' names the unknown variant 'UNet'; {VARIANTS}."),
    ("baselines key unknown", _set("baselines", {"SRB": "U-Net"}), ": 'baselines' names the unknown variant 'SRB'"),
    ("baselines value unknown", _set("baselines", "U-Net + SRB_F", "Unet"),
     f": 'baselines' of 'U-Net + SRB_F' names the unknown variant 'Unet'; {VARIANTS}."),
    ("baseline of itself", _set("baselines", "U-Net + SRB_F", "U-Net + SRB_F"),
     ": 'baselines' of 'U-Net + SRB_F' pairs the variant with itself."),
    ("preset names a missing variant", _set("presets", "smoke", "variants", ["U-Net", "U-Net + 9 SRB_F"]),
     f": preset 'smoke' 'variants' names the unknown variant 'U-Net + 9 SRB_F'; {VARIANTS}."),
    ("preset variants a name, not a list", _set("presets", "smoke", "variants", "U-Net"),
     ": preset 'smoke' 'variants' must be '*' (every variant) or a non-empty list of variant names, got 'U-Net'."),
    ("preset lists a variant twice", _set("presets", "smoke", "variants", ["U-Net", "U-Net"]),
     ": preset 'smoke' 'variants' lists ['U-Net'] more than once."),
    ("comparison names a missing variant", _set("presets", "smoke", "comparisons", [["U-Net + SRB_I", "U-Net"]]),
     f": preset 'smoke' 'comparisons' names the unknown variant 'U-Net + SRB_I'; {VARIANTS}."),
    ("comparison names an untrained variant", _set("presets", "smoke", "variants", ["U-Net"]),
     ": preset 'smoke' 'comparisons' names 'U-Net + SRB_F', which the preset does not train; it trains ['U-Net']."),
    ("comparison not a pair", _set("presets", "smoke", "comparisons", [["U-Net + SRB_F"]]),
     ": preset 'smoke' 'comparisons' must be [variant, reference] pairs of names, got ['U-Net + SRB_F']."),
    ("comparison of a variant with itself", _set("presets", "smoke", "comparisons", [["U-Net", "U-Net"]]),
     ": preset 'smoke' 'comparisons' compares 'U-Net' with itself."),
    ("seeds as a string", _set("presets", "smoke", "seeds", "0,1"),
     ": preset 'smoke' 'seeds' must be a non-empty list of integers >= 0, got '0,1'."),
    ("seeds as a number", _set("presets", "smoke", "seeds", 3), ": preset 'smoke' 'seeds' must be a non-empty list"),
    ("a fractional seed", _set("presets", "smoke", "seeds", [0, 1.5]), SEEDS + "[0, 1.5]."),
    ("a boolean seed", _set("presets", "smoke", "seeds", [True]), SEEDS + "[True]."),
    ("a negative seed", _set("presets", "smoke", "seeds", [-1]), SEEDS + "[-1]."),
    ("no seeds", _set("presets", "smoke", "seeds", []), SEEDS + "[]."),
    ("a seed twice", _set("presets", "smoke", "seeds", [0, 0]), ": preset 'smoke' 'seeds' lists [0] more than once"),
    ("folds as a string", _set("presets", "smoke", "folds", "0"),
     ": preset 'smoke' 'folds' must be a non-empty list of integers >= 0, or null (one split, no folds), got '0'."),
    ("a fold beyond num_folds", _set("presets", "smoke", "folds", [0, 2]),
     ": preset 'smoke' 'folds' [0, 2] go beyond its num_folds=2 (folds 0 .. 1)."),
    ("misspelt preset key", _set("presets", "smoke", "seed", [0]),
     ": preset 'smoke' has the unknown key(s) ['seed']; expected keys among ['variants', 'seeds', 'folds', "),
    ("experiment of a missing preset", _set("presets", "more", "experiment", "smok"),
     ": preset 'more' 'experiment' names the unknown preset 'smok'; the grid's presets are ['smoke', 'more']."),
    ("experiment with another budget", _set("presets", "more", "overrides", {"num_folds": 3}),
     ": preset 'more' adds runs to the experiment of preset 'smoke', so it needs the same overrides"),
    ("variants a list", _set("variants", ["U-Net"]),
     ": 'variants' must be a non-empty object of variant name -> bundle overrides, got ['U-Net']."),
    ("variant overrides a list", _set("variants", "U-Net", ["srb_positions"]),
     ": variant 'U-Net' must be an object of bundle overrides, got ['srb_positions']."),
    ("two variants of one run name", _set("variants", "U-Net plus SRB_F", {}),
     ": variants 'U-Net + SRB_F' and 'U-Net plus SRB_F' have the same run name 'U_Net_plus_SRB_F' (the letters"),
    ("presets a list", _set("presets", ["smoke"]), ": 'presets' must be a non-empty object of preset name -> preset"),
    ("metrics a string", _set("metrics", "val_dice"),
     ": 'metrics' must be a non-empty list of strings, got 'val_dice'."),
    ("key metric not logged", _set("key_metric", "val_iou"),
     ": 'key_metric' 'val_iou' is none of the 'metrics' ['val_dice', 'val_mean_iou']."),
    ("configs a string", _set("configs", "configs/train.json"), ": 'configs' must be a non-empty list of strings"),
    ("name a number", _set("name", 3), ": 'name' must be a non-empty string, got 3."),
    ("test without transform", _set("test", {"data": "$@datalists['test']"}),
     ": 'test' must be an object with the strings 'data' and 'transform', got {'data': "),
]


@pytest.mark.parametrize("case,edit,message", BAD_GRIDS, ids=[c[0] for c in BAD_GRIDS])
def test_a_bad_grid_is_refused_naming_the_file_key_and_value(tmp_path, case, edit, message):
    grid = _tiny_grid()
    (tmp_path / "good.json").write_text(json.dumps(grid))
    assert plan(load_grid(tmp_path / "good.json"), "smoke")  # the unbroken grid loads
    edit(grid)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(grid))
    with pytest.raises(ValueError) as info:
        load_grid(path)
    assert str(info.value).startswith(f"grid {path}{message}"), str(info.value)


# (case, the grid file's text from the tiny grid's, the error after "grid <file>")
BAD_GRID_FILES = [
    ("duplicate variant name", lambda t: t.replace('"U-Net + SRB_F": {"block"', '"U-Net": {"block"'),
     " repeats the key(s) ['U-Net'] in one object (JSON keeps only the last of them)."),
    ("duplicate preset key", lambda t: t.replace('"seeds": [0, 1]', '"seeds": [0, 1], "seeds": [5]'),
     " repeats the key(s) ['seeds'] in one object"),
    ("not JSON", lambda t: t[:-2], " is not valid JSON: Expecting ',' delimiter: line 1"),
    ("a list", lambda t: "[1, 2]", " must hold one JSON object with the keys ['name', 'bundle', "),
]


@pytest.mark.parametrize("case,text,message", BAD_GRID_FILES, ids=[c[0] for c in BAD_GRID_FILES])
def test_a_bad_grid_file_is_refused_naming_the_file(tmp_path, case, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text(json.dumps(_tiny_grid())))
    with pytest.raises(ValueError) as info:
        load_grid(path)
    assert str(info.value).startswith(f"grid {path}{message}"), str(info.value)


def test_a_missing_grid_file_lists_the_grids(tmp_path):
    with pytest.raises(ValueError) as info:
        load_grid(tmp_path / "isic.json")
    assert str(info.value).startswith(f"grid file {tmp_path / 'isic.json'} does not exist; the grids in ")
    assert "'isic_table1.json'" in str(info.value)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--preset", "smok"], "--preset must be one of the presets ['smoke', 'more'] of {grid}, got 'smok'"),
        (["--preset", "smoke", "--variants", "U-Net", "SRB"],
         "--variants ['SRB'] are not variants of {grid}; its variants are ['U-Net', 'U-Net + SRB_F']"),
        (["--preset", "smoke", "--report-only"], "grid {grid}: 'baseline' names the unknown variant 'UNet'"),
    ],
    ids=["unknown preset", "unknown variant", "bad grid"],
)
def test_the_command_refuses_a_bad_grid_or_preset_as_a_usage_error(tmp_path, args, message, capsys):
    grid = _tiny_grid()
    if "--report-only" in args:
        grid["baseline"] = "UNet"
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(grid))
    with pytest.raises(SystemExit) as e:
        main(["--grid", str(path), "--out", str(tmp_path / "out"), *args])
    assert e.value.code == 2 and message.format(grid=path) in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
