"""MONAI's CheckpointSaver with atomic writes and a ``n_saved`` that holds across resumed runs."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path
from typing import Any

from ignite.engine import Engine
from monai.handlers import CheckpointSaver

__all__ = ["AtomicCheckpointSaver", "SRBCheckpointSaver"]


class AtomicCheckpointSaver(CheckpointSaver):
    """
    :class:`monai.handlers.CheckpointSaver` that

    - writes every checkpoint atomically (a temporary file in ``save_dir``, then a rename), so a process
      killed while saving leaves the previous checkpoints and no truncated one. MONAI passes
      ``atomic=False`` to Ignite's ``DiskSaver`` because the temporary file is private to its owner;
      Ignite adds group and others read permission after the rename, so that reason no longer holds.
    - adopts, at its first interval save, the interval checkpoints (``checkpoint_epoch=K.pt``) already in
      ``save_dir``: Ignite's ``Checkpoint`` only counts the files it wrote itself, so a resumed run would
      keep the interrupted run's checkpoints forever. Those of epochs (iterations) before the one being
      saved join the rotation (the newest ``n_saved`` of them; the others are removed); later ones belong
      to the interrupted run's path past the resume point, which this run retrains, and are removed with
      a warning. With ``n_saved=None`` (keep all) nothing is removed.

    Args:
        args: the arguments of :class:`monai.handlers.CheckpointSaver`.
        kwargs: the arguments of :class:`monai.handlers.CheckpointSaver`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for checkpoint in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if checkpoint is not None:
                checkpoint.save_handler._atomic = True  # DiskSaver's switch; its constructor's is fixed by MONAI
        self._adopted = False

    def _interval_file(self) -> re.Pattern[str]:
        checkpoint = self._interval_checkpoint
        assert checkpoint is not None
        name = "checkpoint" if len(self.save_dict) > 1 else next(iter(self.save_dict))
        filename = checkpoint._get_filename_pattern(None).format(  # the pattern Ignite names its files by
            filename_prefix=checkpoint.filename_prefix, name=name, score_name=checkpoint.score_name,
            score="\0", global_step=None, ext=checkpoint.ext,
        )
        return re.compile(re.escape(filename).replace("\0", r"(\d+)"))

    def adopt_existing(self, engine: Engine) -> None:
        """
        Put the interval checkpoints already in ``save_dir`` into the rotation before this run's first save.

        Args:
            engine: the trainer, at the epoch (iteration) about to be saved.
        """
        checkpoint = self._interval_checkpoint
        if checkpoint is None or checkpoint.n_saved is None:
            return
        current = checkpoint.score_function(engine)
        pattern = self._interval_file()
        found = sorted(
            (int(m.group(1)), p.name)
            for p in Path(self.save_dir).glob("*")
            if (m := pattern.fullmatch(p.name)) is not None
        )
        earlier = [(step, name) for step, name in found if step < current]
        later = [name for step, name in found if step >= current]
        if later:
            logging.getLogger(self._name).warning(
                f"removing {later} from {self.save_dir}: written past step {current - 1}, where this run "
                "resumed; it retrains those steps."
            )
        keep = earlier[-checkpoint.n_saved :]  # Ignite removes the oldest of them when it saves this step
        for name in [name for step, name in earlier if (step, name) not in keep] + later:
            checkpoint.save_handler.remove(name)
        checkpoint.load_state_dict({"_saved": keep})

    def interval_completed(self, engine: Engine) -> None:
        if not self._adopted:
            self.adopt_existing(engine)
            self._adopted = True
        super().interval_completed(engine)


class SRBCheckpointSaver(AtomicCheckpointSaver):
    """
    Deprecated name of :class:`AtomicCheckpointSaver`, which says what it adds to MONAI's saver; kept for one
    release so that a bundle of one's own naming ``SRBCheckpointSaver`` still runs; it warns when built.

    Args:
        args: the arguments of :class:`AtomicCheckpointSaver`.
        kwargs: the arguments of :class:`AtomicCheckpointSaver`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        warnings.warn(
            "SRBCheckpointSaver is deprecated and will be removed in the next release; use AtomicCheckpointSaver "
            "(monai_srb.handlers.AtomicCheckpointSaver), the same class.",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(*args, **kwargs)
