"""
Export SRB networks for deployment: TorchScript, and ONNX checked with ONNX Runtime.

FFT layers are where deployment usually breaks: PyTorch's TorchScript-based ONNX exporter has no
``fft_rfftn`` (onnx/onnx#4843, #4845), and other runtimes lack ONNX's ``DFT``. :func:`export_onnx`
therefore switches every SRB_F in the network to ``impl="matmul"`` (the same orthonormal DFT as
cosine/sine matrix products built for the exported size) for the export and back afterwards; SRB_A and
SRB_DCT are matmuls already. The exported graph has a dynamic batch dimension and a fixed spatial size,
which :class:`OnnxPredictor` checks before running it.

    monai-srb export --bundle_root bundles/srb_skin_lesion_segmentation --out_dir exported

The network is rebuilt from the bundle's ``network_def`` with the overrides its training run stored beside
the checkpoint (``<ckpt_dir>/network_config.json``: ``image_size``, ``block``, ...); any ``--<id> <value>``
given after the export's own options is a further bundle override (``--image_size 64``) and wins.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from monai.networks.utils import convert_to_onnx, convert_to_torchscript
from monai.utils import look_up_option
from torch import nn

from monai_srb.bundle_config import load_network_config
from monai_srb.spectral.fourier import FFT_IMPLS, FourierTransform

__all__ = [
    "EXPORT_FORMATS",
    "OnnxPredictor",
    "bundle_input_shape",
    "export_onnx",
    "export_pt2",
    "export_torchscript",
    "load_network_weights",
    "matmul_dft",
    "set_fft_impl_",
]

INPUT_NAME, OUTPUT_NAME = "image", "pred"
# What ``monai-srb export --format`` writes: TorchScript (model.ts), ONNX (model.onnx), torch.export (model.pt2).
EXPORT_FORMATS = ("ts", "onnx", "pt2")


def set_fft_impl_(network: nn.Module, impl: str) -> int:
    """Set ``impl`` (``"fft"`` or ``"matmul"``) on every :class:`FourierTransform` in ``network``; returns how many."""
    impl = look_up_option(impl, FFT_IMPLS)
    touched = 0
    for m in network.modules():
        if isinstance(m, FourierTransform):
            m.impl = impl
            touched += 1
    return touched


@contextmanager
def matmul_dft(network: nn.Module) -> Iterator[nn.Module]:
    """Run the SRB_F transforms of ``network`` as DFT matrix products inside the ``with`` block."""
    before = [(m, m.impl) for m in network.modules() if isinstance(m, FourierTransform)]
    set_fft_impl_(network, "matmul")
    try:
        yield network
    finally:
        for m, impl in before:
            m.impl = impl


def _example(network: nn.Module, example_input: torch.Tensor | Sequence[int]) -> torch.Tensor:
    if isinstance(example_input, torch.Tensor):
        return example_input
    param = next(network.parameters(), None)
    return torch.randn(*example_input, device=param.device if param is not None else None)


def _metadata(x: torch.Tensor, out: torch.Tensor) -> dict[str, object]:
    return {"input_shape": ["batch"] + list(x.shape[1:]), "output_shape": ["batch"] + list(out.shape[1:])}


def export_torchscript(
    network: nn.Module,
    filepath: str,
    example_input: torch.Tensor | Sequence[int],
    use_trace: bool = False,
    atol: float = 1e-4,
) -> str:
    """
    Save ``network`` (in eval mode) as TorchScript with MONAI's ``convert_to_torchscript``, check that the
    saved model reloads and matches eager PyTorch within ``atol``, and store the input/output shapes in
    the file's ``metadata.json`` extra file.

    Args:
        network: the network to export; switched to eval mode.
        filepath: the ``.ts`` file to write.
        example_input: a tensor or a shape (batch, channels, *spatial) used to check the export.
        use_trace: ``torch.jit.trace`` instead of ``torch.jit.script`` (a traced SRB takes only the
            traced size).
        atol: largest absolute difference accepted between the TorchScript and eager outputs.

    Raises:
        ValueError: when the reloaded model differs from eager PyTorch by more than ``atol``.
    """
    network = network.eval()
    x = _example(network, example_input)
    with torch.no_grad():
        expected = network(x)
    extra = {"metadata.json": json.dumps(_metadata(x, expected)).encode()}
    convert_to_torchscript(network, filename_or_obj=filepath, extra_files=extra, use_trace=use_trace, inputs=[x])
    loaded = torch.jit.load(filepath, map_location=x.device)
    with torch.no_grad():
        diff = (loaded(x) - expected).abs().max().item()
    if diff > atol:
        raise ValueError(f"TorchScript model {filepath} differs from eager PyTorch by {diff:.3g} > atol={atol}.")
    return filepath


def _fixed_size(network: nn.Module) -> bool:
    """Whether ``network`` holds a transform built for one input size (SRB_A): its export keeps that size."""
    from monai_srb.spectral.base import SpectralTransform

    return any(isinstance(m, SpectralTransform) and m.needs_spatial_size for m in network.modules())


def export_pt2(
    network: nn.Module,
    filepath: str,
    example_input: torch.Tensor | Sequence[int],
    check_shapes: Sequence[Sequence[int]] = (),
    atol: float = 1e-4,
) -> str:
    """
    Save ``network`` (in eval mode) as a ``torch.export`` ExportedProgram (``torch.export.save``), without
    TorchScript. The batch is dynamic, and so is every spatial dim unless the network holds an SRB_A (its
    orthogonal matrices are built for one size): ``Dim.AUTO``, so the exporter keeps what the network needs (for a
    U-Net, the multiples of 16 its poolings take, and the smallest sizes its norms take; the program's
    ``range_constraints`` hold them). The saved program is reloaded and checked against eager PyTorch at
    ``example_input`` and at each of ``check_shapes``.

    Args:
        network: the network to export; switched to eval mode.
        filepath: the ``.pt2`` file to write.
        example_input: a tensor or a shape (batch, channels, *spatial) to trace.
        check_shapes: further input shapes the reloaded program must take and match eager at.
        atol: largest absolute difference accepted between the reloaded program and eager PyTorch.

    Raises:
        ValueError: when the reloaded program differs from eager PyTorch by more than ``atol`` at a shape.
    """
    network = network.eval()
    given = _example(network, example_input)
    # torch.export fixes a dim of size 1 (0/1 specialisation): trace a batch of 2, so the batch stays dynamic
    x = torch.cat([given, given]) if given.shape[0] == 1 else given
    dims = {0: torch.export.Dim.AUTO}
    if not _fixed_size(network):
        dims.update({axis: torch.export.Dim.AUTO for axis in range(2, x.ndim)})
    name = (inspect_forward_args(network) or ["x"])[0]
    with torch.no_grad():
        program = torch.export.export(network, (x,), dynamic_shapes={name: dims})
    torch.export.save(program, filepath)
    loaded = torch.export.load(filepath).module()
    for shape in [list(given.shape), list(x.shape), *[list(s) for s in check_shapes]]:
        probe = torch.randn(shape, device=x.device)
        with torch.no_grad():
            diff = (loaded(probe) - network(probe)).abs().max().item()
        if diff > atol:
            raise ValueError(f"torch.export program {filepath} differs from eager PyTorch by {diff:.3g} > atol={atol} "
                             f"at input shape {shape}.")
    return filepath


def inspect_forward_args(network: nn.Module) -> list[str]:
    """The names of ``network.forward``'s positional arguments (``torch.export``'s ``dynamic_shapes`` keys)."""
    import inspect

    return [p.name for p in inspect.signature(network.forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def export_onnx(
    network: nn.Module,
    filepath: str,
    example_input: torch.Tensor | Sequence[int],
    atol: float = 1e-4,
    opset_version: int | None = None,
) -> str:
    """
    Export ``network`` (in eval mode, SRB_F as DFT matmuls) to ONNX with MONAI's ``convert_to_onnx``, with
    a dynamic batch dimension, then run it with ONNX Runtime (CPU) on a batch of another size and check
    it matches eager PyTorch within ``atol``. The input is named ``image`` and the output ``pred``.

    Args:
        network: the network to export; switched to eval mode, its FFT implementation restored after.
        filepath: the ``.onnx`` file to write.
        example_input: a tensor or a shape (batch, channels, *spatial); the spatial size is fixed in the
            exported graph.
        atol: largest absolute difference accepted between ONNX Runtime and eager outputs.
        opset_version: ONNX opset; default: the exporter's.

    Raises:
        ValueError: when ONNX Runtime's output differs from eager PyTorch by more than ``atol``.
    """
    import onnx

    network = network.eval()
    x = _example(network, example_input)
    if x.shape[0] < 2:
        # torch.export specialises a dimension of size 1 to a constant, which would pin the batch to 1.
        x = x.expand(2, *x.shape[1:]).clone()
    with matmul_dft(network), torch.no_grad():
        convert_to_onnx(
            network,
            inputs=[x],
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            filename=filepath,
            opset_version=opset_version,
            verify=False,
        )
    model = onnx.load(filepath)
    check = torch.cat([x, x[:1]])
    with torch.no_grad():
        expected = network(check)
    onnx.helper.set_model_props(model, {"monai_srb": json.dumps(_metadata(x, expected))})
    onnx.save(model, filepath)
    got = OnnxPredictor(filepath)(check.cpu().numpy())
    diff = float(np.abs(got - expected.cpu().numpy()).max())
    if diff > atol:
        raise ValueError(f"ONNX model {filepath} differs from eager PyTorch by {diff:.3g} > atol={atol}.")
    return filepath


class OnnxPredictor:
    """
    Run an exported ONNX model with ONNX Runtime, checking the input against the shape it was exported
    for (any batch size, fixed channels and spatial size).

    Args:
        filepath: an ``.onnx`` file written by :func:`export_onnx` (or any model with one input).
        providers: ONNX Runtime execution providers; default CPU.

    Raises:
        ValueError: in ``__call__``, when the input's shape is not one the model can take.
    """

    def __init__(self, filepath: str, providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        import onnxruntime

        if not os.path.isfile(filepath):
            raise ValueError(f"ONNX model file {filepath!r} does not exist.")
        self.filepath = filepath
        self.session = onnxruntime.InferenceSession(filepath, providers=list(providers))
        (inp,) = self.session.get_inputs()
        self.input_name = inp.name
        self.input_shape = [d if isinstance(d, int) else None for d in inp.shape]

    def __call__(self, image: np.ndarray | torch.Tensor) -> np.ndarray:
        if isinstance(image, torch.Tensor):
            image = image.detach().cpu().numpy()
        shape = list(image.shape)
        fits = len(shape) == len(self.input_shape) and all(e is None or e == s for e, s in zip(self.input_shape, shape))
        if not fits:
            expected = ["batch" if e is None else e for e in self.input_shape]
            raise ValueError(f"{self.filepath} was exported for input shape {expected}, got {shape}.")
        return self.session.run(None, {self.input_name: image.astype(np.float32, copy=False)})[0]


def load_network_weights(network: nn.Module, ckpt_file: str) -> nn.Module:
    """
    Load a bundle checkpoint into ``network`` with ``torch.load(weights_only=True)``: either a bare state
    dict (the best-metric ``model.pt``) or a full checkpoint whose ``"network"``/``"model"`` entry holds it.

    Raises:
        ValueError: when the file is missing, holds no state dict, or one that does not fit ``network``
            (a network built with other bundle overrides than the checkpoint's run, e.g. ``image_size``).
    """
    if not os.path.isfile(ckpt_file):
        raise ValueError(f"checkpoint file {ckpt_file!r} does not exist.")
    state = torch.load(ckpt_file, map_location="cpu", weights_only=True)
    for key in ("network", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"checkpoint file {ckpt_file!r} holds no network state dict.")
    try:
        network.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(
            f"checkpoint file {ckpt_file!r} does not fit the {type(network).__name__} built from the bundle config "
            "(was it trained with other overrides, e.g. image_size or block? pass them as --<id> <value>): "
            f"{str(e).splitlines()[0]} {' '.join(str(e).splitlines()[1:3])}"
        ) from e
    return network


def bundle_input_shape(parser: object) -> list[int]:
    """
    (1, channels, *spatial) of a bundle's network input: channels from the first convolution of its
    ``network_def`` (as built with the run's overrides, which the metadata's default may not match), size
    from its ``patch_size`` or ``image_size``.
    """
    from monai.utils import ensure_tuple_rep

    network = parser.get_parsed_content("network_def")  # type: ignore[attr-defined]
    first_conv = next(m for m in network.modules() if isinstance(m, nn.modules.conv._ConvNd))
    spatial_dims, channels = first_conv.weight.ndim - 2, first_conv.in_channels
    for key in ("patch_size", "image_size"):
        if key in parser:  # type: ignore[operator]
            size = parser.get_parsed_content(key)  # type: ignore[attr-defined]
            return [1, channels] + [int(s) for s in ensure_tuple_rep(size, spatial_dims)]
    raise ValueError("the bundle config has neither 'patch_size' nor 'image_size'; pass --input_shape.")


def _cli_overrides(extra: Sequence[str]) -> dict[str, object]:
    """``["--image_size", "64", "--block=srb_aom"]`` -> ``{"image_size": 64, "block": "srb_aom"}``, as fire reads."""
    overrides: dict[str, object] = {}
    items = list(extra)
    while items:
        key = items.pop(0)
        if not key.startswith("--") or len(key) < 3:
            raise ValueError(f"bundle overrides must be --<id> <value> pairs, got {key!r} in {list(extra)}.")
        key, eq, value = key[2:].partition("=")
        if not eq:
            if not items or items[0].startswith("--"):
                raise ValueError(f"bundle override --{key} has no value (expected --{key} <value>).")
            value = items.pop(0)
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    return overrides


def main(argv: Sequence[str] | None = None) -> None:
    """
    Export a bundle's (trained) network to ``<out_dir>/model.ts`` and ``<out_dir>/model.onnx`` (``--format``; also
    ``model.pt2``, a ``torch.export`` program), built with
    the overrides stored beside the checkpoint and then those given on the command line.
    """
    import argparse

    from monai.bundle import ConfigParser

    ap = argparse.ArgumentParser(
        prog="monai-srb export", description="Export a monai_srb bundle's network to TorchScript and ONNX."
    )
    ap.add_argument("--bundle_root", required=True, help="the bundle folder, e.g. bundles/srb_skin_lesion_segmentation")
    ap.add_argument("--config_file", default=None, help="default: <bundle_root>/configs/train.json")
    ap.add_argument("--ckpt_file", default=None, help="default: the config's output_dir/models/model.pt")
    ap.add_argument("--out_dir", default="exported")
    ap.add_argument("--input_shape", type=int, nargs="+", default=None, help="(batch, channels, *spatial)")
    ap.add_argument("--format", nargs="+", default=["ts", "onnx"], choices=EXPORT_FORMATS,
                    help="ts (TorchScript), onnx (ONNX, checked with ONNX Runtime), pt2 (torch.export; dynamic batch "
                    "and spatial size, but for SRB_A); default: ts onnx")
    args, extra = ap.parse_known_args(argv)
    try:
        overrides = _cli_overrides(extra)
    except ValueError as e:
        ap.error(str(e))

    config_file = args.config_file or os.path.join(args.bundle_root, "configs", "train.json")
    meta_file = os.path.join(args.bundle_root, "configs", "metadata.json")
    parser = ConfigParser()
    parser.read_config(config_file)
    parser.read_meta(meta_file)
    parser.update({"bundle_root": args.bundle_root, **overrides})
    ckpt = args.ckpt_file or os.path.join(parser.get_parsed_content("output_dir"), "models", "model.pt")
    stored = load_network_config(os.path.dirname(os.path.abspath(ckpt)))
    parser.update({**stored, **overrides})
    if stored:
        print(f"network overrides stored by the training run: {stored}")
    network = parser.get_parsed_content("network_def")
    load_network_weights(network, ckpt)
    shape = args.input_shape or bundle_input_shape(parser)
    os.makedirs(args.out_dir, exist_ok=True)
    written = []
    if "ts" in args.format:
        written.append(export_torchscript(network, os.path.join(args.out_dir, "model.ts"), shape))
    if "onnx" in args.format:
        written.append(export_onnx(network, os.path.join(args.out_dir, "model.onnx"), shape))
    if "pt2" in args.format:
        # a second size to check the dynamic dims: twice each spatial size (the same multiples), batch 2
        other = [] if _fixed_size(network) else [[2, shape[1], *[2 * s for s in shape[2:]]]]
        written.append(export_pt2(network, os.path.join(args.out_dir, "model.pt2"), shape, other))
    print(f"exported {ckpt} for input {['batch'] + shape[1:]}:\n  " + "\n  ".join(written))


if __name__ == "__main__":
    main()
