"""The DDP steps: this process's device, and leaving the process group once every rank is done."""

from __future__ import annotations

from pathlib import Path

import torch

from monai_srb.bundle.distributed import distributed_device, finalize_distributed


def test_distributed_device_is_the_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed_device() == torch.device("cpu")


def test_distributed_device_is_the_local_rank_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed_device() == torch.device("cuda", 1)


def test_finalize_distributed_waits_for_every_rank_before_leaving_the_group(tmp_path: Path, monkeypatch):
    import ignite.distributed as idist
    import torch.distributed as dist

    calls = []
    for name in ("barrier", "monitored_barrier", "destroy_process_group"):
        original = getattr(dist, name)
        monkeypatch.setattr(dist, name, lambda *a, _f=original, _n=name, **k: (calls.append(_n), _f(*a, **k))[1])
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    idist.sync()  # Ignite picks the group up, as the bundles' engines do
    try:
        finalize_distributed()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    # gloo: the barrier that keeps no earlier collective alive (see finalize_distributed)
    assert calls[0] == "monitored_barrier" and "barrier" not in calls and "destroy_process_group" in calls
    assert not dist.is_initialized() and idist.get_world_size() == 1
    calls.clear()
    finalize_distributed()  # no group (a single-process run): nothing to wait for or leave
    assert calls == []


def test_finalize_distributed_uses_the_plain_barrier_on_nccl(monkeypatch):
    import ignite.distributed as idist
    import torch.distributed as dist

    calls = []
    state = {"initialized": True}
    monkeypatch.setattr(dist, "is_initialized", lambda: state["initialized"])
    monkeypatch.setattr(dist, "get_backend", lambda *a, **k: "nccl")
    monkeypatch.setattr(dist, "barrier", lambda *a, **k: calls.append("barrier"))
    monkeypatch.setattr(dist, "monitored_barrier", lambda *a, **k: calls.append("monitored_barrier"))
    monkeypatch.setattr(idist, "finalize", lambda: calls.append("idist.finalize"))

    def destroy(*args, **kwargs) -> None:
        calls.append("destroy")
        state["initialized"] = False

    monkeypatch.setattr(dist, "destroy_process_group", destroy)
    finalize_distributed()
    assert calls == ["barrier", "idist.finalize", "destroy"]
