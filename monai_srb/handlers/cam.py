"""Grad-CAM overlays of a few validation images, written as PNGs for MLflow to upload."""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine
from monai.transforms import rescale_array
from monai.visualize import GradCAM
from monai.visualize.utils import blend_images
from torch import nn

from monai_srb.handlers.image_handler import ImageSavingHandler

__all__ = ["GradCAMHandler"]


class GradCAMHandler(ImageSavingHandler):
    """
    When the engine it is attached to completes a run (a validator: every validation; an evaluator: once),
    compute :class:`monai.visualize.GradCAM` heat maps of the first ``num_images`` items of ``dataset`` and
    save each as a PNG overlay (image in grey, heat map in ``cmap``) named
    ``cam_<k>_<item name>_<class>.png`` in ``output_dir``. Give ``output_dir`` to the trainer's
    ``MLFlowHandler`` ``artifacts`` and the latest overlays are uploaded when training completes.

    The maps come from a copy of the network, so the hooks Grad-CAM registers (and its backward pass) never
    touch the trained network or its ``DistributedDataParallel`` wrapper; the overlays of an earlier run
    are replaced, not accumulated.

    Target layers (see the networks' docstrings): ``"class_layers.relu"`` for
    :class:`~monai_srb.nets.srb_classifiers.SRBDenseNet121` (after the last SRB and ``norm5``),
    ``"layer4"`` for :class:`~monai_srb.nets.srb_classifiers.SRBResNet50` (after the last SRB).

    Args:
        network: the classifier (logits ``(batch, classes)``); a ``DistributedDataParallel`` wrapper is
            unwrapped.
        target_layers: name of the layer in ``network.named_modules()`` whose activations and gradients
            make the map.
        dataset: indexable items after the validation preprocessing, dicts with ``image_key``
            (``(channels, *spatial)``, 2D) and optionally ``name_key``; e.g. the validator's dataset.
        output_dir: folder of the PNGs (created).
        num_images: number of items, the first ones of ``dataset``.
        class_names: names of the network's outputs, for the file names; ``None``: the class index.
        class_idx: the class to explain; ``None``: the highest-scoring class of each image.
        alpha: opacity of the heat map over the image.
        cmap: matplotlib colour map of the heat map.
        image_key: key of the image in an item.
        name_key: key of the item's name (e.g. its file name); items without it are named by index.

    Raises:
        ValueError: when ``num_images`` is below 1 or ``target_layers`` is not a layer of ``network``.
    """

    def __init__(
        self,
        network: nn.Module,
        target_layers: str,
        dataset: Sequence[dict[str, Any]],
        output_dir: str | os.PathLike,
        num_images: int = 4,
        class_names: Sequence[str] | None = None,
        class_idx: int | None = None,
        alpha: float = 0.4,
        cmap: str = "jet",
        image_key: str = "image",
        name_key: str = "name",
    ) -> None:
        super().__init__(network, dataset, output_dir, num_images, prefix="cam")
        layers = dict(self.network.named_modules())
        if target_layers not in layers:
            raise ValueError(
                f"target_layers {target_layers!r} is not a layer of {type(self.network).__name__}; the last "
                f"layers are {list(layers)[-5:]}."
            )
        self.target_layers = target_layers
        self.class_names = list(class_names) if class_names is not None else None
        self.class_idx = class_idx
        self.alpha = alpha
        self.cmap = cmap
        self.image_key = image_key
        self.name_key = name_key

    def __call__(self, engine: Engine | None = None) -> list[Path]:
        """
        Compute and save the overlays.

        Args:
            engine: the engine that completed (unused; the handler's own network and data are used).

        Returns:
            the PNG paths written.
        """
        net = copy.deepcopy(self.network)
        device = next(net.parameters()).device
        cam = GradCAM(nn_module=net, target_layers=self.target_layers)
        for k, item in self.items():
            image = torch.as_tensor(item[self.image_key], dtype=torch.float32).to(device)
            with torch.enable_grad():
                heat = cam(image[None], class_idx=self.class_idx)[0].detach()
            cls = int(cam.nn_module.class_idx[0]) if self.class_idx is None else self.class_idx
            self._save(k, item, image.cpu(), heat.cpu(), cls)
        return self.saved

    def _save(self, k: int, item: dict[str, Any], image: torch.Tensor, heat: torch.Tensor, cls: int) -> Path:
        image = rescale_array(image)
        # The heat map is already in [0, 1]; rescaling it again would stretch a flat map into noise.
        overlay = blend_images(
            image, heat, alpha=self.alpha, cmap=self.cmap, rescale_arrays=False, transparent_background=False
        )
        name = Path(str(item.get(self.name_key, k))).stem
        label = self.class_names[cls] if self.class_names is not None else str(cls)
        return self.write_png([image, torch.as_tensor(overlay)], f"{k:02d}_{name}_{label}")  # input | overlay
