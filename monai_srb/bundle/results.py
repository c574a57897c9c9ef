"""
What a run leaves its user: the lines a training prints when it ends (:class:`TrainingSummary`: the best and the
last key metric, the checkpoint, the MLflow run and the command that opens it), the log line of an evaluate run
naming what was scored, with which checkpoint, and where the scores are (:func:`log_evaluation`), and the header of
an inference's prediction CSV (:func:`label_prediction_columns`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import pandas
from ignite.engine import Engine, Events
from monai.apps import get_logger

from monai_srb.tracking import RUN_ID_STATE_KEY, tracking_enabled

__all__ = ["SUMMARY_LOGGER", "TrainingSummary", "label_prediction_columns", "log_evaluation"]

logger = logging.getLogger(__name__)
# The logger of the training summary: MONAI's get_logger prints it to stdout at INFO, as StatsHandler's epoch lines.
SUMMARY_LOGGER = "monai_srb.summary"


def log_evaluation(
    scored: int,
    evaluate_split: str,
    source: str | os.PathLike,
    ckpt_path: str | os.PathLike,
    eval_dir: str | os.PathLike,
    what: str = "images",
) -> None:
    """
    Log (``INFO``) what an evaluate run scored, with which checkpoint, and where its scores are.

    Args:
        scored: how many items the evaluator scored.
        evaluate_split: the split scored (``"val"``, ``"test"`` or ``"all"``).
        source: the data set scored.
        ckpt_path: the checkpoint scored.
        eval_dir: the folder the scores went to.
        what: what the items are (``"images"``, ``"volumes"``).
    """
    logger.info(
        "evaluate: scored %d %s (evaluate_split %r of %s) with %s; scores in %s",
        scored, what, evaluate_split, source, ckpt_path, eval_dir,
    )


def label_prediction_columns(prediction_file: str | os.PathLike, class_names: Sequence[str]) -> None:
    """
    Give the CSV that MONAI's ``ClassificationSaver`` writes (no header: the image, then one probability per class)
    a header row, ``image`` and the class names, and write the probabilities with 6 decimals.

    Args:
        prediction_file: the CSV, rewritten in place.
        class_names: one name per probability column, in the network's output order.
    """
    table = pandas.read_csv(prediction_file, header=None, names=["image", *class_names])
    table.to_csv(prediction_file, index=False, float_format="%.6f")


class TrainingSummary:
    """
    What a training run prints when it ends (at the trainer's ``COMPLETED``, also after an early stop), to stdout
    through the logger :data:`SUMMARY_LOGGER`, set up as MONAI's ``StatsHandler`` sets up its own (``monai.apps``'s
    ``get_logger``), so the summary shows wherever the epoch lines do, with or without a logging config::

        training ended after 20 epochs
        best val_mean_iou 0.8123 at epoch 17; last 0.8011 (epoch 20)
        best checkpoint: /home/me/srb_skin_lesion_segmentation/runs/models/model.pt
        MLflow run 3f2a9c... in sqlite:////home/me/srb_skin_lesion_segmentation/runs/mlflow.db
        open it: mlflow ui --backend-store-uri sqlite:////home/me/srb_skin_lesion_segmentation/runs/mlflow.db

    An ``http(s)://`` store gives the run's page instead of the ``mlflow ui`` command; without MLflow (tracking
    off) the last lines say so. The bundles attach it as ``train#summary_handler``, on the main process only.

    Args:
        validator: the evaluator the trainer's ``ValidationHandler`` runs: its state holds the key metric's name,
            best value and epoch (``key_metric_name``, ``best_metric``, ``best_metric_epoch``) and last values.
        ckpt_path: the best checkpoint (the key-metric saver's file).
        tracking_uri: the MLflow store the run logged to; ``None`` or an off value (``"null"``) for none.
    """

    def __init__(self, validator: Engine, ckpt_path: str | os.PathLike, tracking_uri: str | None = None) -> None:
        self.validator = validator
        self.ckpt_path = ckpt_path
        self.tracking_uri = str(tracking_uri) if tracking_enabled(tracking_uri) else None

    def attach(self, engine: Engine) -> None:
        """
        Print the summary when ``engine`` completes.

        Args:
            engine: the trainer.
        """
        if not engine.has_event_handler(self, Events.COMPLETED):
            engine.add_event_handler(Events.COMPLETED, self)

    def lines(self, trainer: Engine) -> list[str]:
        """
        The summary's lines.

        Args:
            trainer: the trainer, once it completed; its state holds the MLflow run id (``mlflow_run_id``) when
                the bundle's MLflow handler ran.
        """
        state = self.validator.state
        name = getattr(state, "key_metric_name", None)
        lines = [f"training ended after {trainer.state.epoch} epoch{'' if trainer.state.epoch == 1 else 's'}"]
        if name is None or getattr(state, "best_metric_epoch", -1) < 1:
            lines.append("no validation ran: no best metric")
        else:
            last = state.metrics.get(name)
            lines.append(f"best {name} {state.best_metric:.4f} at epoch {state.best_metric_epoch}; "
                         f"last {last:.4f} (epoch {state.epoch})")
        found = "" if os.path.isfile(self.ckpt_path) else " (not written)"
        lines.append(f"best checkpoint: {os.path.abspath(self.ckpt_path)}{found}")
        run_id = getattr(trainer.state, RUN_ID_STATE_KEY, None)
        if self.tracking_uri is None or run_id is None:
            lines.append("MLflow: off (no tracking_uri, or tracking_uri null)")
            return lines
        lines.append(f"MLflow run {run_id} in {self.tracking_uri}")
        lines.append(f"open it: {_open_command(self.tracking_uri, run_id)}")
        return lines

    def __call__(self, trainer: Engine) -> None:
        """
        Log :meth:`lines` (``INFO``) to :data:`SUMMARY_LOGGER`.

        Args:
            trainer: the trainer, at ``COMPLETED``.
        """
        summary = get_logger(SUMMARY_LOGGER)  # now, not at import: a logging config loaded since would disable it
        for line in self.lines(trainer):
            summary.info(line)


def _open_command(tracking_uri: str, run_id: str) -> str:
    """``mlflow ui --backend-store-uri <uri>`` for a store on this machine; a server's page of the run otherwise."""
    if not tracking_uri.lower().startswith(("http://", "https://")):
        return f"mlflow ui --backend-store-uri {tracking_uri}"
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        experiment_id = MlflowClient(tracking_uri).get_run(run_id).info.experiment_id
    except MlflowException:  # the server is gone: its address still says where to look
        return f"open {tracking_uri.rstrip('/')} in a browser"
    return f"open {tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id} in a browser"
