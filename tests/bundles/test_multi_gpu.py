"""multi_gpu_train.json and multi_gpu_evaluate.json of each bundle under ``torchrun`` with two gloo ranks on the CPU:
the main process alone writes the synthetic data, checkpoints, scores and MLflow runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

REPO = Path(__file__).resolve().parents[2]
CHEST, SEG3D = "srb_chest_xray_classification", "srb_3d_segmentation"
TINY = {
    CHEST: {"image_size": 32, "synthetic_samples": 16, "batch_size": 4, "num_cam_images": 1},
    SEG3D: {"synthetic_samples": 8, "synthetic_size": 32, "batch_size": 1, "sw_batch_size": 2},  # 2 to validate
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}


def _torchrun(bundle: str, configs: tuple[str, ...], output_dir: Path, **overrides: object) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = REPO / "bundles" / bundle
    files = "[" + ",".join(f"'{root / 'configs' / name}.json'" for name in configs) + "]"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
        "-m", "monai.bundle", "run", "--config_file", files,
        "--bundle_root", str(root), "--output_dir", str(output_dir),
        *[arg for k, v in {**TINY[bundle], **overrides}.items() for arg in (f"--{k}", str(v))],
    ]
    result = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    first = result.stderr.find("Traceback")  # the failing rank's own traceback comes before torchrun's summary
    assert result.returncode == 0, result.stderr[max(first, 0) :][:6000] + "\n...\n" + result.stderr[-3000:]


# The skin bundle's DDP training is tests/bundles/test_skin_lesion_bundle.py's test_multi_gpu_ddp_on_cpu (its
# checkpoints, the one MLflow run); its DDP evaluation is tests/bundles/test_model_zoo.py's gloo evaluate test and the
# docs test's README.md#bundles-1. A case here is 3 processes (36 s on 2 cores).
@pytest.mark.slow
@pytest.mark.parametrize("bundle", [CHEST, SEG3D])
def test_two_ranks_train_and_evaluate_and_only_the_main_process_writes(bundle, tmp_path):
    _torchrun(bundle, ("train", "multi_gpu_train"), tmp_path, epochs=1)
    _torchrun(bundle, ("train", "evaluate", "multi_gpu_evaluate"), tmp_path)
    models = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert models == ["checkpoint_epoch=1.pt", "model.pt", "network_config.json"]
    assert (tmp_path / "eval" / "metrics.csv").is_file() and (tmp_path / "synthetic_data").is_dir()
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(bundle).experiment_id])
    names = sorted(r.info.run_name.split("_")[0] for r in runs)  # one run per job: train_<date>_<time>_<pid>
    assert names == ["evaluate", "train"] and all(r.info.status == "FINISHED" for r in runs)
