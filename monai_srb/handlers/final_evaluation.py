"""Score a held-out split once, when training ends: after the last epoch or an early stop."""

from __future__ import annotations

from ignite.engine import Engine, Events
from monai.engines import Evaluator

__all__ = ["FinalEvaluationHandler"]


class FinalEvaluationHandler:
    """
    Run ``evaluator`` once, at the end of the trainer's last epoch: the ``max_epochs``-th, or the one whose
    validation asked the trainer to stop (MONAI's ``EarlyStopHandler`` calls ``terminate``). As MONAI's
    ``ValidationHandler`` does, it passes the trainer's epoch, so its scores are logged at that step.

    It runs at ``EPOCH_COMPLETED`` rather than ``COMPLETED`` so that the training's MLflow run, which its
    handler closes at ``COMPLETED``, is still open: an evaluator whose ``MLFlowHandler`` joins the trainer's
    run logs the test scores there. Attach it after the checkpoint saver: an evaluator that loads the best
    weights into the trained network must not change what the last full checkpoint holds.

    Args:
        evaluator: the MONAI evaluator to run, e.g. a ``SupervisedEvaluator`` on the test split whose handlers
            load the best checkpoint first.
        enabled: ``False`` makes :meth:`attach` a no-op (an opt-in bundle override).
    """

    def __init__(self, evaluator: Evaluator, enabled: bool = True) -> None:
        self.evaluator = evaluator
        self.enabled = bool(enabled)

    def attach(self, engine: Engine) -> None:
        """
        Args:
            engine: the trainer.
        """
        if self.enabled:
            engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if engine.state.epoch >= (engine.state.max_epochs or 0) or engine.should_terminate:
            self.evaluator.run(engine.state.epoch)
