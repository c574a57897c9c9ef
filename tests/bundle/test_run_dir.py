"""The ``output_dir`` lock (one run per folder, stale locks taken over) and the stored network overrides."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest

from monai_srb.bundle.run_dir import NETWORK_CONFIG_FILE, OutputDirLock, load_network_config, save_network_config
from monai_srb.nets.srb_classifiers import SRBResNet50


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_second_process_is_refused_until_the_first_is_killed(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from monai_srb.bundle.run_dir import OutputDirLock; "
         f"OutputDirLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        lock = OutputDirLock(str(tmp_path))
        with pytest.raises(RuntimeError, match=rf"output_dir '{tmp_path}' is in use by another run \(PID {holder.pid}"):
            lock.acquire()
        assert not lock.held
    finally:
        holder.kill()  # kill -9: the holder never releases its lock
        holder.wait()
    with pytest.warns(RuntimeWarning, match=rf"stale lock .*run.lock \(PID {holder.pid}, which is no longer running"):
        lock.acquire()
    assert lock.held and (tmp_path / "run.lock").read_text().split()[0] == str(os.getpid())
    lock.release()
    assert not (tmp_path / "run.lock").exists()


def test_lock_is_created_released_and_reentrant_in_one_process(tmp_path):
    out = tmp_path / "new" / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with OutputDirLock(str(out)) as first:
            assert (out / "run.lock").is_file()
            # an earlier in-process run that failed before finalize: its lock is this process's own
            second = OutputDirLock(str(out)).acquire()
            assert second.held
        assert not (out / "run.lock").exists()
        second.release()  # a second release is harmless
        first.release()


def test_stale_and_unreadable_locks_are_taken_over(tmp_path):
    (tmp_path / "run.lock").write_text(f"{_dead_pid()}\n")
    with pytest.warns(RuntimeWarning, match="no longer running"):
        OutputDirLock(str(tmp_path)).acquire().release()
    (tmp_path / "run.lock").write_text("")  # a run killed between creating and writing its lock
    with pytest.warns(RuntimeWarning, match="no readable PID"):
        OutputDirLock(str(tmp_path)).acquire().release()


def test_lock_of_another_host_is_respected(tmp_path):
    (tmp_path / "run.lock").write_text(f"{_dead_pid()}\nanother-host.example\n")
    with pytest.raises(RuntimeError, match="on host another-host.example"):
        OutputDirLock(str(tmp_path)).acquire()


def test_disabled_lock_on_other_ranks_writes_nothing(tmp_path):
    (tmp_path / "run.lock").write_text(f"{os.getppid()}\n")
    lock = OutputDirLock(str(tmp_path), enabled=False).acquire()
    lock.release()
    assert not lock.held and (tmp_path / "run.lock").read_text() == f"{os.getppid()}\n"


def test_a_refused_lock_is_the_last_line_printed(tmp_path, monai_wrapped, printed):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "run.lock").write_text(f"{holder.pid}\n")
        lines = printed(monai_wrapped(OutputDirLock(str(tmp_path)).acquire, "monai_srb.bundle.run_dir.OutputDirLock"))
    finally:
        holder.kill()
        holder.wait()
    assert lines[-1].startswith(f"RuntimeError: output_dir '{tmp_path}' is in use by another run (PID {holder.pid}")


def test_network_config_round_trip(tmp_path):
    overrides = {"image_size": 64, "patch_size": (32, 32, 32), "block": "srb_aom"}
    path = save_network_config(str(tmp_path / "models"), overrides)
    assert os.path.basename(path) == NETWORK_CONFIG_FILE
    assert load_network_config(str(tmp_path / "models")) == {**overrides, "patch_size": [32, 32, 32]}
    assert load_network_config(str(tmp_path / "none")) == {}
    save_network_config(str(tmp_path / "models"), {"image_size": 64}, network=SRBResNet50(2, 1, 3))
    assert load_network_config(str(tmp_path / "models")) == {
        "image_size": 64, "network_def#_target_": "monai_srb.nets.srb_classifiers.SRBResNet50"
    }
    with pytest.raises(ValueError, match="JSON values"):
        save_network_config(str(tmp_path), {"network": object()})
    (tmp_path / NETWORK_CONFIG_FILE).write_text(json.dumps({"image_size": 64}))
    with pytest.raises(ValueError, match="must hold"):
        load_network_config(str(tmp_path))
