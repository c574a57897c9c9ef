"""Prediction-vs-ground-truth overlays (the paper's Fig. 4) of a few validation images, as PNGs."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.transforms import rescale_array
from monai.visualize.utils import blend_images
from PIL import Image
from torch import nn

__all__ = ["SegmentationOverlayHandler"]


class SegmentationOverlayHandler:
    """
    When the engine it is attached to completes a run (a validator: after every validation), segment the
    first ``num_images`` items of ``dataset`` and save, for each, a PNG with the image, the ground truth
    over the image and the prediction over the image side by side (``overlay_<k>_<name>.png`` in
    ``output_dir``, replacing the previous ones). 3D items are shown at the slice along the last axis
    with the most ground-truth foreground. Give ``output_dir`` to the trainer's MLflow handler
    ``artifacts`` to upload the latest overlays when training completes.

    Args:
        network: the segmentation network (logits ``(batch, classes, *spatial)``); a
            ``DistributedDataParallel`` wrapper is unwrapped.
        dataset: indexable items after the validation preprocessing: dicts with ``image_key``
            (``(channels, *spatial)``), ``label_key`` (``(1, *spatial)``, class indices) and optionally
            ``name_key``.
        output_dir: folder of the PNGs (created).
        inferer: ``inferer(inputs, network)`` such as MONAI's ``SlidingWindowInferer``; ``None`` calls the
            network on the whole image.
        num_images: number of items, the first ones of ``dataset``.
        alpha: opacity of the label colours over the image.
        image_key: key of the image in an item.
        label_key: key of the ground-truth label map.
        name_key: key of the item's name (e.g. its file name); items without it are named by index.

    Raises:
        ValueError: when ``num_images`` is below 1.
    """

    def __init__(
        self,
        network: nn.Module,
        dataset: Sequence[dict[str, Any]],
        output_dir: str | os.PathLike,
        inferer: Callable[[torch.Tensor, nn.Module], torch.Tensor] | None = None,
        num_images: int = 4,
        alpha: float = 0.5,
        image_key: str = "image",
        label_key: str = "label",
        name_key: str = "name",
    ) -> None:
        if num_images < 1:
            raise ValueError(f"num_images must be a positive int, got {num_images}.")
        self.network = network.module if isinstance(network, nn.parallel.DistributedDataParallel) else network
        self.dataset = dataset
        self.output_dir = Path(output_dir)
        self.inferer = inferer
        self.num_images = num_images
        self.alpha = alpha
        self.image_key, self.label_key, self.name_key = image_key, label_key, name_key
        self.saved: list[Path] = []

    def attach(self, engine: Engine) -> None:
        """Run at the end of every run of ``engine``."""
        engine.add_event_handler(Events.COMPLETED, self)

    @torch.no_grad()
    def __call__(self, engine: Engine | None = None) -> list[Path]:
        """Segment the items and save the overlays; returns the PNG paths written."""
        was_training = self.network.training
        self.network.eval()
        device = next(self.network.parameters()).device
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for old in self.output_dir.glob("overlay_*.png"):
            old.unlink()
        self.saved = []
        try:
            for k in range(min(self.num_images, len(self.dataset))):
                item = self.dataset[k]
                image = torch.as_tensor(item[self.image_key], dtype=torch.float32)
                label = torch.as_tensor(item[self.label_key])
                inputs = image[None].to(device)
                logits = self.inferer(inputs, self.network) if self.inferer is not None else self.network(inputs)
                pred = logits.argmax(1).cpu()
                self.saved.append(self._save(k, item, image, label[:1].long(), pred))
        finally:
            self.network.train(was_training)
        return self.saved

    def _save(self, k: int, item: dict[str, Any], image: torch.Tensor, label: torch.Tensor, pred: torch.Tensor) -> Path:
        if image.ndim == 4:  # 3D: the slice with the most ground-truth foreground
            z = int((label > 0).flatten(1, 2).sum(1)[0].argmax())
            image, label, pred = image[..., z], label[..., z], pred[..., z]
        image = rescale_array(image[:3] if image.shape[0] >= 3 else image[:1])
        grey = image.expand(3, *image.shape[1:]) if image.shape[0] == 1 else image
        top = max(int(label.max()), int(pred.max()), 1)
        panels = [grey]
        for labels in (label, pred):
            # Fixed colours per class (label / top), so ground truth and prediction are comparable.
            blended = blend_images(
                image, labels.float() / top, alpha=self.alpha * (labels > 0).float(), cmap="hsv", rescale_arrays=False
            )
            panels.append(torch.as_tensor(blended))
        rgb = torch.cat(panels, dim=-1)
        pixels = (np.clip(np.moveaxis(np.asarray(rgb), 0, -1), 0.0, 1.0) * 255).round().astype(np.uint8)
        meta = getattr(item[self.image_key], "meta", {})  # MONAI's MetaTensor knows its file
        name = Path(str(item.get(self.name_key, meta.get("filename_or_obj", k)))).name.split(".")[0]
        path = self.output_dir / f"overlay_{k:02d}_{name}.png"
        Image.fromarray(pixels).save(path)
        return path
