"""
Figures of trained runs of a grid (the output of ``python -m workflows.run_experiments``).
Segmentation: Fig. 4-style overlays and effective receptive-field (ERF) maps, U-Net vs SRB-UNet, plus the
``alpha`` each SRB learned.
Classification (``--cam``): Fig. 5-style Grad-CAM maps, the PNGs the bundle's ``GradCAMHandler`` wrote for
the same validation images, one row per variant.

    python -m workflows.figures --out runs/experiments/isic_cpu --variants "U-Net" "U-Net + 4 SRB_F" \
        --seed 0 --fold 0 --figures docs/figures --erf-size 256
    python -m workflows.figures --out runs/experiments/dermamnist_cpu --variants "ResNet-50" \
        "ResNet-50 + 2 SRB_F" --cam --figures docs/figures --prefix dermamnist_

ERF: the gradient of the lesion logit at the central output pixel with respect to the input image
(|grad| summed over the colour channels), on a real validation image. Two fractions of the image are
reported: pixels with any gradient (where the output can see at all) and pixels with at least 1% of the
largest gradient (where it effectively looks). ``--erf-size`` also maps untrained networks at a larger
size, with every SRB's ``alpha`` set to 0.1 (at ``alpha = 0`` an SRB passes no gradient through its
spectral branch): the structural reach of each architecture.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.metrics import compute_iou
from monai.utils import look_up_option
from torch import nn

from monai_srb.blocks import SpectralResidualBlock
from monai_srb.nets import init_srbs
from workflows.grid import ROOT, Job

EFFECTIVE = 0.01


def load_run(run_dir: Path) -> tuple[nn.Module, Any, dict[str, Any]]:
    """The trained network (best epoch) and the validation dataset of one run folder of the runner."""
    from monai.bundle import ConfigParser

    job = json.loads((run_dir / "job.json").read_text())
    parser = ConfigParser()
    parser.read_config([str(run_bundle(job) / "configs" / "train.json")])
    parser.update({**top_level(job["overrides"]), "device": "$torch.device('cpu')"})
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(run_dir / "models" / "model.pt", map_location="cpu", weights_only=True))
    return network.eval(), parser.get_parsed_content("validate#dataset"), job


def run_bundle(job: dict[str, Any]) -> Path:
    """The bundle a run trained with; this repository's bundle of that name when that folder is gone (a snapshot)."""
    bundle = Path(job["overrides"]["bundle_root"])
    return bundle if bundle.is_dir() else ROOT / "bundles" / bundle.name


def top_level(overrides: dict[str, Any]) -> dict[str, Any]:
    """
    A run's overrides of top-level ids: all that builds its network and its data. Nested ids (handler settings
    such as ``train#mlflow_handler#artifacts``) are left out: their paths change between bundle versions.
    """
    return {k: v for k, v in overrides.items() if "#" not in k}


def srb_alphas(network: nn.Module) -> dict[str, float]:
    return {n: m.alpha.item() for n, m in network.named_modules() if isinstance(m, SpectralResidualBlock)}


def erf_map(network: nn.Module, image: torch.Tensor, channel: int = 1) -> np.ndarray:
    """|d logit[channel] at the centre / d input|, summed over input channels, (H, W)."""
    x = image[None].detach().clone().requires_grad_(True)
    out = network(x)
    h, w = out.shape[-2:]
    out[0, channel, h // 2, w // 2].backward()
    return x.grad[0].abs().sum(0).numpy()


def reach(grad: np.ndarray) -> tuple[float, float]:
    """(fraction of pixels with any gradient, fraction with at least EFFECTIVE of the largest)."""
    peak = grad.max()
    return float((grad > 0).mean()), float((grad >= EFFECTIVE * peak).mean()) if peak > 0 else 0.0


def _show_erf(ax: Any, grad: np.ndarray, title: str) -> None:
    g = grad / grad.max() if grad.max() > 0 else grad
    ax.imshow(np.log10(g + 1e-6), cmap="magma", vmin=-6, vmax=0)
    any_, eff = reach(grad)
    ax.set_title(f"{title}\nreach {any_:.0%}, ≥1% of max {eff:.0%}", fontsize=8)
    ax.axis("off")


def _show_image(ax: Any, image: torch.Tensor) -> None:
    """An RGB or grayscale (1-channel) image in [0, 1], (C, H, W)."""
    pixels = np.clip(np.moveaxis(image.numpy(), 0, -1), 0, 1)
    if pixels.shape[-1] == 1:
        ax.imshow(pixels[..., 0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(pixels)


def _iou(pred: np.ndarray, label: np.ndarray) -> float:
    """The foreground IoU of one prediction (MONAI's ``compute_iou``; 1 when both are empty)."""
    fg = [torch.as_tensor(a == 1)[None, None] for a in (pred, label)]
    return float(compute_iou(*fg, include_background=True, ignore_empty=False))


def _predict(net: nn.Module, image: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return net(image[None]).argmax(1)[0].numpy()


def most_different(models: dict[str, nn.Module], dataset: Any, num_images: int) -> list[int]:
    """
    Indices of the ``num_images`` images of ``dataset`` where the first two networks of ``models`` differ most:
    the largest |IoU of the first - IoU of the second| of the foreground, largest first (ties: dataset order).
    """
    first, second = list(models.values())[:2]
    gaps = []
    for k in range(len(dataset)):
        item = dataset[k]
        image, label = torch.as_tensor(item["image"]).float(), np.asarray(item["label"])[0]
        gaps.append(abs(_iou(_predict(first, image), label) - _iou(_predict(second, image), label)))
    return sorted(range(len(gaps)), key=lambda k: -gaps[k])[:num_images]


def overlays(models: dict[str, nn.Module], dataset: Any, path: Path, num_images: int = 4,
             select: str = "first") -> list[int]:
    """
    Fig. 4 style: each image with the ground truth (green) and each network's prediction, with its foreground
    IoU. ``select``: ``"first"``, the first ``num_images`` images; ``"differ"``, the images where the first two
    networks differ most (:func:`most_different`). Returns the indices shown.
    """
    import matplotlib.pyplot as plt

    select = look_up_option(select, ("first", "differ"))
    colours = ["tab:blue", "tab:red", "tab:orange", "tab:purple"]
    num_images = min(num_images, len(dataset))
    shown = list(range(num_images)) if select == "first" else most_different(models, dataset, num_images)
    fig, axes = plt.subplots(1, num_images, figsize=(3 * num_images, 3.4), squeeze=False)
    for k, ax in zip(shown, axes[0]):
        item = dataset[k]
        image, label = torch.as_tensor(item["image"]).float(), np.asarray(item["label"])[0]
        _show_image(ax, image)
        ax.contour(label, levels=[0.5], colors="lime", linewidths=1.5)
        for (name, net), colour in zip(models.items(), colours):
            pred = _predict(net, image)
            ax.contour(pred, levels=[0.5], colors=colour, linewidths=1.0)
            ax.plot([], [], color=colour, label=f"{name} (IoU {_iou(pred, label):.2f})")
        ax.plot([], [], color="lime", label="ground truth")
        ax.legend(fontsize=6, loc="lower left")
        name = item.get("name") or getattr(item["image"], "meta", {}).get("filename_or_obj", k)
        ax.set_title(Path(str(name)).stem, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return shown


def erf_figure(models: dict[str, nn.Module], image: torch.Tensor, structural: dict[str, nn.Module],
               big_image: torch.Tensor | None, path: Path) -> dict[str, tuple[float, float]]:
    import matplotlib.pyplot as plt

    panels = [(f"{n} (trained, {image.shape[-1]} px)", m, image) for n, m in models.items()]
    if big_image is not None:
        panels += [(f"{n} (untrained, {big_image.shape[-1]} px, α=0.1)", m, big_image) for n, m in structural.items()]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(3.2 * (len(panels) + 1), 4.0))
    _show_image(axes[0], image)
    axes[0].plot(image.shape[-1] // 2, image.shape[-2] // 2, "c+", ms=12)
    axes[0].set_title("input, + : output pixel", fontsize=8)
    axes[0].axis("off")
    fractions = {}
    for ax, (title, net, x) in zip(axes[1:], panels):
        grad = erf_map(net, x)
        fractions[title] = reach(grad)
        _show_erf(ax, grad, title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fractions


def cam_figure(run_dirs: dict[str, Path], path: Path) -> None:
    """One row per variant of the Grad-CAM PNGs (input | overlay) in each run's ``cam`` folder."""
    import matplotlib.pyplot as plt
    from PIL import Image

    cams = {v: sorted((d / "cam").glob("cam_*.png")) for v, d in run_dirs.items()}
    cols = max(len(c) for c in cams.values())
    fig, axes = plt.subplots(len(cams), cols, figsize=(2.6 * cols, 1.6 * len(cams) + 0.4), squeeze=False)
    for row, (variant, files) in zip(axes, cams.items()):
        for ax in row:
            ax.axis("off")
        for ax, f in zip(row, files):
            ax.imshow(np.asarray(Image.open(f)), interpolation="nearest")
            ax.set_title(f"{variant}\n{f.stem.split('_', 2)[-1]}", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m workflows.figures", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the runner's --out folder")
    parser.add_argument("--variants", nargs="+", required=True, help="variants to compare, the first is the reference")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fold", type=int, default=None)
    parser.add_argument("--figures", required=True, help="folder of the PNGs")
    parser.add_argument("--prefix", default="", help="prefix of the PNG names")
    parser.add_argument("--num-images", type=int, default=4)
    parser.add_argument("--select", choices=("first", "differ"), default="first",
                        help="overlays: the first images, or those where the first two variants differ most")
    parser.add_argument("--erf-size", type=int, default=None, help="also map untrained networks at this size")
    parser.add_argument("--cam", action="store_true", help="classification runs: tile their Grad-CAM PNGs")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    figures = Path(args.figures)
    figures.mkdir(parents=True, exist_ok=True)
    if args.cam:
        run_dirs = {v: Path(args.out) / "runs" / Job(v, args.seed, args.fold, {}).slug for v in args.variants}
        cam_figure(run_dirs, figures / f"{args.prefix}cams.png")
        return {}
    models, jobs, dataset = {}, {}, None
    for variant in args.variants:
        slug = Job(variant, args.seed, args.fold, {}).slug
        net, ds, job = load_run(Path(args.out) / "runs" / slug)
        models[variant], jobs[variant] = net, job
        dataset = dataset if dataset is not None else ds
    shown = overlays(models, dataset, figures / f"{args.prefix}overlays.png", args.num_images, args.select)
    image = torch.as_tensor(dataset[0]["image"]).float()
    structural, big = {}, None
    if args.erf_size:
        from monai.bundle import ConfigParser

        for variant, job in jobs.items():
            p = ConfigParser()
            p.read_config([str(run_bundle(job) / "configs" / "train.json")])
            p.update({**top_level(job["overrides"]), "image_size": args.erf_size, "device": "$torch.device('cpu')"})
            torch.manual_seed(0)
            structural[variant] = init_srbs(p.get_parsed_content("network_def"), alpha=0.1).eval()
        big = torch.nn.functional.interpolate(image[None], size=(args.erf_size,) * 2, mode="bilinear")[0]
    fractions = erf_figure(models, image, structural, big, figures / f"{args.prefix}erf.png")
    result = {"erf": fractions, "alpha": {v: srb_alphas(m) for v, m in models.items()}, "overlay_images": shown}
    (figures / f"{args.prefix}erf.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
