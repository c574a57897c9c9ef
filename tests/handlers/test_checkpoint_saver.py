from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events

from monai_srb.handlers import AtomicCheckpointSaver, SRBCheckpointSaver


def _trainer(max_epochs: int, resume_epoch: int = 0) -> Engine:
    trainer = Engine(lambda engine, batch: None)
    if resume_epoch:  # what CheckpointLoader does at STARTED
        trainer.load_state_dict({"epoch": resume_epoch, "epoch_length": 2, "max_epochs": max_epochs})
    return trainer


def _saver(save_dir: Path, n_saved: int | None) -> AtomicCheckpointSaver:
    net = torch.nn.Linear(2, 1)
    return AtomicCheckpointSaver(
        save_dir=str(save_dir), save_dict={"network": net, "optimizer": torch.optim.SGD(net.parameters(), lr=0.1)},
        save_interval=1, epoch_level=True, n_saved=n_saved,
    )


def _files(save_dir: Path) -> list[str]:
    return sorted(p.name for p in save_dir.iterdir())


def test_a_failed_write_leaves_no_truncated_checkpoint(tmp_path, monkeypatch):
    saver = _saver(tmp_path, n_saved=None)
    trainer = _trainer(max_epochs=2)
    saver.attach(trainer)
    real_save = torch.save

    def dies_while_writing(obj, f, *args, **kwargs):
        if trainer.state.epoch == 2:  # half the bytes, then the process "dies"
            data = io.BytesIO()
            real_save(obj, data)
            (open(f, "wb") if isinstance(f, (str, Path)) else f).write(data.getvalue()[:100])
            raise KeyboardInterrupt
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", dies_while_writing)
    with pytest.raises(KeyboardInterrupt):
        trainer.run([0, 1], max_epochs=2)
    # MONAI's own CheckpointSaver writes in place (atomic=False): checkpoint_epoch=2.pt would be 100 bytes here.
    assert _files(tmp_path) == ["checkpoint_epoch=1.pt"]
    assert torch.load(tmp_path / "checkpoint_epoch=1.pt", weights_only=True).keys() == {"network", "optimizer"}


@pytest.mark.parametrize(
    "on_disk,resume_epoch,n_saved,after_first_save,at_end",
    [
        ([1, 2, 3], 3, 2, [3, 4], [5, 6]),  # the interrupted run's oldest go
        ([1, 2, 3, 4, 5], 3, 2, [3, 4], [5, 6]),  # 4, 5: written past the resume point, retrained
        ([1, 2, 3], 3, 1, [4], [6]),
        ([1, 2, 3], 3, None, [1, 2, 3, 4], [1, 2, 3, 4, 5, 6]),  # keep all
        ([], 0, 2, [1], [5, 6]),
    ],
)
def test_checkpoints_already_on_disk_count_towards_n_saved(
    tmp_path, caplog, on_disk, resume_epoch, n_saved, after_first_save, at_end
):
    for epoch in on_disk:
        torch.save({}, tmp_path / f"checkpoint_epoch={epoch}.pt")
    (tmp_path / "model.pt").write_bytes(b"best")  # other files are left alone
    saver = _saver(tmp_path, n_saved)
    trainer = _trainer(max_epochs=6, resume_epoch=resume_epoch)
    saver.attach(trainer)
    seen = []
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: seen.append(_files(tmp_path)))
    with caplog.at_level(logging.WARNING):
        trainer.run([0, 1], max_epochs=6)
    expected = [[f"checkpoint_epoch={k}.pt" for k in epochs] + ["model.pt"] for epochs in (after_first_save, at_end)]
    assert [seen[0], seen[-1]] == expected
    assert ("checkpoint_epoch=5.pt" in caplog.text) == (on_disk == [1, 2, 3, 4, 5])


def test_the_old_name_still_builds_the_saver_and_warns(tmp_path):
    net = torch.nn.Linear(2, 1)
    with pytest.warns(DeprecationWarning, match=r"SRBCheckpointSaver is deprecated .*use AtomicCheckpointSaver"):
        saver = SRBCheckpointSaver(save_dir=str(tmp_path), save_dict={"network": net}, save_interval=1)
    assert isinstance(saver, AtomicCheckpointSaver)
