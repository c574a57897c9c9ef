from __future__ import annotations

import pytest
from ignite.engine import Engine, Events

from monai_srb.handlers import FinalEvaluationHandler


class _Evaluator:
    """Records the trainer epochs it is run at (a MONAI evaluator's ``run(global_epoch)``)."""

    def __init__(self) -> None:
        self.ran_at: list[int] = []

    def run(self, global_epoch: int = 1) -> None:
        self.ran_at.append(global_epoch)


# (max_epochs, epoch whose end stops training early or None, enabled, epochs at whose end the evaluator runs)
CASES = [(3, None, True, [3]), (5, 2, True, [2]), (3, None, False, [])]


@pytest.mark.parametrize("max_epochs,stop_at,enabled,expected", CASES)
def test_runs_once_at_the_last_epoch_or_the_early_stop(max_epochs, stop_at, enabled, expected):
    trainer = Engine(lambda engine, batch: None)
    evaluator = _Evaluator()
    if stop_at is not None:  # as EarlyStopHandler does, from the validation at the end of an epoch
        trainer.add_event_handler(Events.EPOCH_COMPLETED(once=stop_at), lambda engine: engine.terminate())
    FinalEvaluationHandler(evaluator, enabled=enabled).attach(trainer)  # type: ignore[arg-type]
    trainer.run([0, 1], max_epochs=max_epochs)
    assert evaluator.ran_at == expected
