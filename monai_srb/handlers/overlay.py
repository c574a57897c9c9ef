"""Prediction-vs-ground-truth overlays (the paper's Fig. 4) of a few validation images, as PNGs."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine
from monai.transforms import rescale_array
from monai.visualize.utils import blend_images
from torch import nn

from monai_srb.handlers.image_handler import ImageSavingHandler

__all__ = ["SegmentationOverlayHandler"]


class SegmentationOverlayHandler(ImageSavingHandler):
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
        super().__init__(network, dataset, output_dir, num_images, prefix="overlay")
        self.inferer = inferer
        self.alpha = alpha
        self.image_key, self.label_key, self.name_key = image_key, label_key, name_key

    @torch.no_grad()
    def __call__(self, engine: Engine | None = None) -> list[Path]:
        """Segment the items and save the overlays; returns the PNG paths written."""
        was_training = self.network.training
        self.network.eval()
        device = next(self.network.parameters()).device
        try:
            for k, item in self.items():
                image = torch.as_tensor(item[self.image_key], dtype=torch.float32)
                label = torch.as_tensor(item[self.label_key])
                inputs = image[None].to(device)
                logits = self.inferer(inputs, self.network) if self.inferer is not None else self.network(inputs)
                pred = logits.argmax(1).cpu()
                self._save(k, item, image, label[:1].long(), pred)
        finally:
            self.network.train(was_training)
        return self.saved

    def _save(self, k: int, item: dict[str, Any], image: torch.Tensor, label: torch.Tensor, pred: torch.Tensor) -> Path:
        if image.ndim == 4:  # 3D: the slice with the most ground-truth foreground
            z = int((label > 0).flatten(1, 2).sum(1)[0].argmax())
            image, label, pred = image[..., z], label[..., z], pred[..., z]
        image = rescale_array(image[:3] if image.shape[0] >= 3 else image[:1])
        top = max(int(label.max()), int(pred.max()), 1)
        panels = [image]
        for labels in (label, pred):
            # Fixed colours per class (label / top), so ground truth and prediction are comparable.
            blended = blend_images(
                image, labels.float() / top, alpha=self.alpha * (labels > 0).float(), cmap="hsv", rescale_arrays=False
            )
            panels.append(torch.as_tensor(blended))
        meta = getattr(item[self.image_key], "meta", {})  # MONAI's MetaTensor knows its file
        name = Path(str(item.get(self.name_key, meta.get("filename_or_obj", k)))).name.split(".")[0]
        return self.write_png(panels, f"{k:02d}_{name}")
