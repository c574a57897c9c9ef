"""Ignite handler that keeps the SRB_A matrices orthogonal during training."""

from __future__ import annotations

from ignite.engine import Engine, Events
from torch import nn

from monai_srb.spectral import retract_orthogonal_

__all__ = ["OrthogonalRetractionHandler"]


class OrthogonalRetractionHandler:
    """
    Re-orthogonalise every AOM matrix of ``network`` by QR after each training iteration, the step the
    paper takes after every optimiser update. A network without AOM matrices is left untouched, so the
    handler can sit in every training config.

    Args:
        network: the trained network (the DDP wrapper or the bare module).
        every: retract every ``every`` iterations (1: the paper).

    Raises:
        ValueError: when ``every`` is below 1.
    """

    def __init__(self, network: nn.Module, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"every must be a positive int, got {every}.")
        self.network = network
        self.every = every
        self.retracted = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.every), self)

    def __call__(self, engine: Engine) -> None:
        self.retracted += retract_orthogonal_(self.network)
