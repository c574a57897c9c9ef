"""What the overlay and CAM handlers share: a few dataset items rendered as PNGs after every validation."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from PIL import Image
from torch import nn

__all__ = ["ImageSavingHandler"]


class ImageSavingHandler:
    """
    Base of the handlers that, when the engine they are attached to completes a run, render the first
    ``num_images`` items of ``dataset`` as PNGs named ``<prefix>_*.png`` in ``output_dir``, replacing the
    previous ones. Subclasses implement ``__call__``.

    Args:
        network: the trained network; a ``DistributedDataParallel`` wrapper is unwrapped.
        dataset: the items to render (e.g. the bundle's validation dataset).
        output_dir: folder of the PNGs.
        num_images: how many of the first items to render.
        prefix: file-name prefix of the PNGs.

    Raises:
        ValueError: when ``num_images`` is not positive.
    """

    def __init__(
        self,
        network: nn.Module,
        dataset: Sequence[dict[str, Any]],
        output_dir: str | os.PathLike,
        num_images: int,
        prefix: str,
    ) -> None:
        if num_images < 1:
            raise ValueError(f"num_images must be a positive int, got {num_images}.")
        self.network = network.module if isinstance(network, nn.parallel.DistributedDataParallel) else network
        self.dataset = dataset
        self.output_dir = Path(output_dir)
        self.num_images = num_images
        self.prefix = prefix
        self.saved: list[Path] = []

    def attach(self, engine: Engine) -> None:
        """Run at the end of every run of ``engine``."""
        engine.add_event_handler(Events.COMPLETED, self)

    def items(self) -> list[tuple[int, dict[str, Any]]]:
        """The items to render, with their index; clears the previous PNGs."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for old in self.output_dir.glob(f"{self.prefix}_*.png"):
            old.unlink()
        self.saved = []
        return [(k, self.dataset[k]) for k in range(min(self.num_images, len(self.dataset)))]

    def write_png(self, panels: Sequence[torch.Tensor], name: str) -> Path:
        """
        Save ``panels`` side by side as ``<output_dir>/<prefix>_<name>.png``.

        Args:
            panels: images in shape (1 or 3, H, W) with values in [0, 1]; one channel is shown grey.
        """
        rgb = torch.cat([p.expand(3, *p.shape[1:]) if p.shape[0] == 1 else p for p in panels], dim=-1)
        pixels = (np.clip(np.moveaxis(np.asarray(rgb), 0, -1), 0.0, 1.0) * 255).round().astype(np.uint8)
        path = self.output_dir / f"{self.prefix}_{name}.png"
        Image.fromarray(pixels).save(path)
        self.saved.append(path)
        return path
