"""Run records: a FINISHED run exported to JSON and imported into a fresh store is the same run to the report."""

from __future__ import annotations

import json

import mlflow
import pytest

from workflows.grid import TAG, experiment_name, load_grid
from workflows.records import export_records, import_records
from workflows.results import read_runs
from workflows.run_experiments import main

GRID = load_grid("workflows/grids/hc18.json")
PRESET = "confirm_256"


def _store(tmp_path, runs):
    """A store with one tagged run per (variant, seed, fold, status): 3 epochs of val_mean_iou, per-image Dice."""
    uri = f"sqlite:///{tmp_path / 'src.db'}"
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment(experiment_name(GRID, PRESET), artifact_location=(tmp_path / "art").as_uri())
    for i, (variant, seed, fold, status) in enumerate(runs):
        run = client.create_run(exp, start_time=1_000 + i, run_name=f"run{i}_s{seed}_f{fold}",
                                tags={TAG + "variant": variant, TAG + "seed": str(seed), TAG + "fold": str(fold)})
        rid = run.info.run_id
        client.log_param(rid, "image_size", "256")
        for epoch in (1, 2, 3):
            client.log_metric(rid, "val_mean_iou", 0.8 + 0.01 * epoch + 0.001 * i, step=epoch, timestamp=10 * epoch)
        for it in range(250):  # per iteration: left out of the record
            client.log_metric(rid, "train_loss", 1.0 / (it + 1), step=it)
        client.log_text(rid, "filename,class0,mean\n/x/images/001_HC.png,0.9,0.9\n/x/images/002_HC.png,0.5,0.5\n",
                        "val_details/val_dice_raw.csv")
        client.set_terminated(rid, status, end_time=2_000 + i)
    return uri


RUNS = [("U-Net, instance norm", 3, 0, "FINISHED"), ("U-Net + 4 SRB_I, instance norm", 3, 0, "FINISHED"),
        ("U-Net + 4 SRB_F, instance norm", 3, 0, "FAILED")]


def test_export_then_import_gives_the_report_the_same_runs(tmp_path):
    src = _store(tmp_path, RUNS)
    written = export_records(src, GRID, PRESET, tmp_path / "records")
    assert sorted(p.name for p in written) == ["run0_s3_f0.json", "run1_s3_f0.json"]  # FINISHED runs only
    assert export_records(src, GRID, PRESET, tmp_path / "records") == []  # already written: not again
    record = json.loads(written[0].read_text())
    assert record["metrics_left_out"] == ["train_loss"] and "train_loss" not in record["metrics"]
    assert record["details"] == {"val_dice": {"001_HC.png": 0.9, "002_HC.png": 0.5}}  # no machine paths
    dst = f"sqlite:///{tmp_path / 'dst.db'}"
    assert len(import_records(tmp_path / "records", dst, GRID, PRESET)) == 2
    assert import_records(tmp_path / "records", dst, GRID, PRESET) == []  # FINISHED in the store: not again
    assert list((tmp_path / "mlartifacts").rglob("val_dice_raw.csv"))  # beside the store, as the runner keeps them
    before = {(r.variant, r.seed, r.fold): r for r in read_runs(src, GRID, PRESET, ["val_mean_iou"])
              if r.status == "FINISHED"}
    after = {(r.variant, r.seed, r.fold): r for r in read_runs(dst, GRID, PRESET, ["val_mean_iou"])}
    assert set(after) == set(before)
    for key, run in after.items():
        assert run.history == before[key].history and run.start_time == before[key].start_time
    assert export_records(dst, GRID, PRESET, tmp_path / "records") == []  # imported from there: left as written
    again = export_records(dst, GRID, PRESET, tmp_path / "again")
    assert [json.loads(p.read_text())["details"] for p in again] == [json.loads(p.read_text())["details"]
                                                                    for p in written]


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda r: r.update(experiment="hc18__cpu_256"),
         "is of experiment 'hc18__cpu_256', expected 'hc18__confirm_256'"),
    ],
)
def test_a_record_of_another_experiment_is_refused_by_name(tmp_path, edit, message):
    export_records(_store(tmp_path, RUNS[:1]), GRID, PRESET, tmp_path / "records")
    (path,) = (tmp_path / "records").glob("*.json")
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=f"record '{path}' {message}"):
        import_records(tmp_path / "records", f"sqlite:///{tmp_path / 'dst.db'}", GRID, PRESET)


def test_missing_records_folder_and_a_file_as_records_are_named(tmp_path, capsys):
    with pytest.raises(ValueError, match=f"records folder '{tmp_path / 'nope'}' does not exist"):
        import_records(tmp_path / "nope", f"sqlite:///{tmp_path / 'dst.db'}", GRID, PRESET)
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as stop:
        main(["--grid", "workflows/grids/hc18.json", "--preset", PRESET, "--out", str(tmp_path / "out"),
              "--report-only", "--records", str(tmp_path / "file")])
    assert stop.value.code == 2
    assert f"--records must be a folder, got the file '{tmp_path / 'file'}'" in capsys.readouterr().err
