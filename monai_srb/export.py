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

import argparse
import ast
import importlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from monai.networks.utils import convert_to_onnx, convert_to_torchscript
from monai.utils import look_up_option
from torch import nn

from monai_srb.bundle.overrides import check_size
from monai_srb.bundle.run_dir import load_network_config
from monai_srb.spectral.base import holds_fixed_size_transform
from monai_srb.spectral.fourier import FFT_IMPLS, FourierTransform

__all__ = [
    "EXPORT_FORMATS",
    "OnnxPredictor",
    "bundle_input_shape",
    "check_input_shape",
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
# What ONNX export and its check need, all in pyproject.toml's optional dependencies ``export``.
_ONNX_MODULES = ("onnx", "onnxruntime", "onnxscript")


def _require_onnx(modules: Sequence[str] = _ONNX_MODULES) -> None:
    """
    Import ``modules``, so that a missing one stops the export before anything is written.

    Args:
        modules: the modules to import; default: all that ONNX export needs (``onnx``, ``onnxruntime``, ``onnxscript``).

    Raises:
        ModuleNotFoundError: naming the missing module and the extra that installs it.
    """
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ModuleNotFoundError(
                f"{name} is not installed; ONNX export and OnnxPredictor need it: pip install \"monai_srb[export]\" "
                "(or export without ONNX: --format ts pt2).",
                name=name,
            ) from e


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
    if not holds_fixed_size_transform(network):
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
        ModuleNotFoundError: when onnx, onnxruntime or onnxscript is missing, naming the extra to install.
        ValueError: when ONNX Runtime's output differs from eager PyTorch by more than ``atol``.
    """
    _require_onnx()
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
            # not MONAI's verify=True, use_ort=True: it runs ONNX Runtime on the export input itself, and so
            # cannot see a batch axis pinned at export. The check below runs a batch of another size and names
            # the largest difference in a ValueError.
            verify=False,
        )
    model = onnx.load(filepath)
    check = torch.cat([x, x[:1]])
    with torch.no_grad():
        expected = network(check)
    onnx.helper.set_model_props(model, {"monai_srb": json.dumps(_metadata(x, expected))})
    onnx.save(model, filepath)
    # torch's exporter writes the weights to <model>.onnx.data; onnx.load read them into the model and onnx.save
    # wrote them inline, so that file (or one left by an earlier export) is referred to by nothing
    sidecar = f"{filepath}.data"
    if os.path.isfile(sidecar):
        os.remove(sidecar)
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
        ModuleNotFoundError: when onnxruntime is missing, naming the extra to install.
        ValueError: when ``filepath`` does not exist; in ``__call__``, when the input's shape is not one the model
            can take.
    """

    def __init__(self, filepath: str, providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        _require_onnx(("onnxruntime",))
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
        ValueError: when the file is missing, is not a torch checkpoint (a log, a truncated file), holds no state
            dict, or one that does not fit ``network`` (a network built with other bundle overrides than the
            checkpoint's run, e.g. ``image_size``).
    """
    if not os.path.isfile(ckpt_file):
        what = "is a folder" if os.path.isdir(ckpt_file) else "does not exist"
        raise ValueError(f"checkpoint file {ckpt_file!r} {what}.")
    try:
        state = torch.load(ckpt_file, map_location="cpu", weights_only=True)
    except Exception as e:  # what a file that is no checkpoint raises varies: UnpicklingError, KeyError, EOFError, ...
        why = ": ".join([type(e).__name__, *str(e).splitlines()[:1]])
        raise ValueError(
            f"checkpoint file {ckpt_file!r} is not a torch checkpoint that torch.load(weights_only=True) reads ({why})."
        ) from e
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


def _first_conv(network: nn.Module) -> nn.Module:
    """The first convolution of ``network``: its input channels and spatial dims are the network's."""
    return next(m for m in network.modules() if isinstance(m, nn.modules.conv._ConvNd))


def _size_id(parser: object) -> str | None:
    """The bundle id that sizes the network's input: ``patch_size`` (3D) or ``image_size``; ``None``: neither."""
    return next((key for key in ("patch_size", "image_size") if key in parser), None)  # type: ignore[operator]


def bundle_input_shape(parser: object) -> list[int]:
    """
    (1, channels, *spatial) of a bundle's network input: channels from the first convolution of its
    ``network_def`` (as built with the run's overrides, which the metadata's default may not match), size
    from its ``patch_size`` or ``image_size``.
    """
    from monai.utils import ensure_tuple_rep

    first_conv = _first_conv(parser.get_parsed_content("network_def"))  # type: ignore[attr-defined]
    spatial_dims, channels = first_conv.weight.ndim - 2, first_conv.in_channels
    key = _size_id(parser)
    if key is None:
        raise ValueError("the bundle config has neither 'patch_size' nor 'image_size'; pass --input_shape.")
    size = parser.get_parsed_content(key)  # type: ignore[attr-defined]
    return [1, channels] + [int(s) for s in ensure_tuple_rep(size, spatial_dims)]


def _size_check(parser: object, key: str) -> dict[str, int]:
    """
    The ``multiple_of`` and ``minimum`` that the bundle's ``checked_overrides`` (what ``initialize`` runs) give
    :func:`check_size` for the id ``key``; ``{}`` when the bundle checks no such id.
    """
    checks = parser.get("checked_overrides", [])  # type: ignore[attr-defined]
    for i, item in enumerate(checks if isinstance(checks, list) else []):
        if isinstance(item, dict) and str(item.get("_target_", "")).endswith("check_size") and item.get("name") == key:
            return {arg: parser.get_parsed_content(f"checked_overrides#{i}#{arg}")  # type: ignore[attr-defined]
                    for arg in ("multiple_of", "minimum") if arg in item}
    return {}


def check_input_shape(shape: Sequence[int], network: nn.Module, parser: object) -> list[int]:
    """
    ``shape`` as a list, when ``network`` (a bundle's ``network_def``, its weights loaded) can be exported for it:
    (batch, channels, *spatial) with the network's spatial dims, a batch of at least 1, the channels of its first
    convolution, spatial sides that the bundle's own :func:`check_size` of its ``patch_size`` / ``image_size``
    accepts (its minimum and multiple), the bundle's size where the network holds an SRB_A, and one forward pass
    in eval mode that runs.

    Args:
        shape: the input shape asked for (``--input_shape``).
        network: the network to export.
        parser: the bundle's ``ConfigParser``, holding the run's overrides.

    Raises:
        ValueError: naming ``--input_shape``, its value and what the network takes.
    """
    shape = [int(s) for s in shape]
    conv = _first_conv(network)
    spatial_dims, channels = conv.weight.ndim - 2, conv.in_channels
    what = f"argument --input_shape: {shape}"
    layout = ", ".join(["batch", "channels", *(f"spatial_{i}" for i in range(1, spatial_dims + 1))])
    if len(shape) != 2 + spatial_dims:
        raise ValueError(
            f"{what} must be {2 + spatial_dims} numbers ({layout}) for the bundle's {spatial_dims}D network, "
            f"got {len(shape)}."
        )
    if shape[0] < 1:
        raise ValueError(f"{what}: the batch must be at least 1, got {shape[0]}.")
    if shape[1] != channels:
        raise ValueError(
            f"{what}: the network takes {channels} channel(s) (its first convolution, as the bundle config and the "
            f"checkpoint build it), got {shape[1]}."
        )
    key = _size_id(parser)
    if key is not None:
        try:
            check_size(shape[2:], key, spatial_dims=spatial_dims, **_size_check(parser, key))
        except ValueError as e:
            raise ValueError(f"{what}: its spatial size is not one the bundle's {key} check takes: {e}") from e
        size = bundle_input_shape(parser)[2:]
        if holds_fixed_size_transform(network) and shape[2:] != size:
            raise ValueError(f"{what}: the network holds an SRB_A, built for the spatial size {size} ({key}) alone, "
                             f"got {shape[2:]}.")
    # The network has the last word, on what the bundle's checks leave open (DenseNet-121's 29 px at least).
    was_training = network.training
    param = next(network.parameters(), None)
    try:
        with torch.no_grad():
            network.eval()(torch.zeros(shape, device=param.device if param is not None else None))
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"{what}: the network cannot take it: {(str(e).splitlines() or [''])[0]}") from e
    finally:
        network.train(was_training)
    return shape


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


def _root_message(error: BaseException) -> str:
    """The message of the first error of a chain: MONAI's ConfigParser wraps a component's error in RuntimeErrors."""
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error).strip()


def _check_paths(args: argparse.Namespace) -> tuple[str, str]:
    """
    The config and metadata files of the export's bundle, after checking the paths the arguments name.

    Args:
        args: the parsed ``monai-srb export`` arguments.

    Raises:
        ValueError: naming the argument and its value: a ``--bundle_root`` that is no bundle folder (no
            ``configs/metadata.json``, as :func:`monai_srb.cli.bundle_path` finds them), a missing
            ``--config_file``, or an ``--out_dir`` that is a file.
    """
    meta_file = os.path.join(args.bundle_root, "configs", "metadata.json")
    if not os.path.isdir(args.bundle_root):
        raise ValueError(f"argument --bundle_root: {args.bundle_root!r} is not a folder (monai-srb bundle-path "
                         "lists the bundles).")
    if not os.path.isfile(meta_file):
        raise ValueError(f"argument --bundle_root: {args.bundle_root!r} is not a bundle folder, it has no "
                         "configs/metadata.json (monai-srb bundle-path lists the bundles).")
    config_file = args.config_file or os.path.join(args.bundle_root, "configs", "train.json")
    if args.config_file and not os.path.isfile(config_file):
        raise ValueError(f"argument --config_file: {config_file!r} is not a file.")
    if not os.path.isfile(config_file):
        raise ValueError(f"argument --bundle_root: {args.bundle_root!r} has no configs/train.json; name the config "
                         "to build the network from with --config_file.")
    if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
        raise ValueError(f"argument --out_dir: {args.out_dir!r} is a file, not a folder.")
    return config_file, meta_file


def _bundle_network(
    config_file: str, meta_file: str, args: argparse.Namespace, overrides: dict[str, object]
) -> tuple[object, str, nn.Module]:
    """
    The bundle's parser, the checkpoint file and its ``network_def`` with the checkpoint's weights, built with the
    overrides stored beside the checkpoint, then ``overrides``, after the bundle's own ``checked_overrides``.

    Raises:
        ValueError: naming what the arguments got wrong: a config that is not JSON, an override the bundle's
            checks refuse, a network the overrides cannot build, a checkpoint file that is missing, is no
            checkpoint or does not fit the network.
    """
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    for read, path in ((parser.read_config, config_file), (parser.read_meta, meta_file)):
        try:
            read(path)
        except ValueError as e:  # json.JSONDecodeError, or MONAI's refusal of a suffix other than .json / .yaml
            raise ValueError(f"bundle config {path!r} is not a JSON or YAML file: {e}") from e
    parser.update({"bundle_root": args.bundle_root, **overrides})
    ckpt = args.ckpt_file or os.path.join(parser.get_parsed_content("output_dir"), "models", "model.pt")
    stored = load_network_config(os.path.dirname(os.path.abspath(ckpt)))
    parser.update({**stored, **overrides})
    if stored:
        print(f"network overrides stored by the training run: {stored}")
    if "checked_overrides" in parser:  # the checks `bundle run` makes first, so a bad override is named as there
        try:
            parser.get_parsed_content("checked_overrides")
        except (RuntimeError, ValueError) as e:
            raise ValueError(_root_message(e)) from e
    try:
        network = parser.get_parsed_content("network_def")
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"the bundle's network_def cannot be built with the overrides {({**stored, **overrides})}: "
                         f"{_root_message(e)}") from e
    try:
        load_network_weights(network, ckpt)
    except ValueError as e:
        given = "--ckpt_file" if args.ckpt_file else "--ckpt_file (default: <output_dir>/models/model.pt)"
        raise ValueError(f"argument {given}: {e}") from e
    return parser, ckpt, network


def main(argv: Sequence[str] | None = None) -> None:
    """
    Export a bundle's (trained) network to ``<out_dir>/model.ts`` and ``<out_dir>/model.onnx`` (``--format``; also
    ``model.pt2``, a ``torch.export`` program), built with the overrides stored beside the checkpoint and then
    those given on the command line. Every argument is checked before anything is written: a bad one is a usage
    error (exit code 2) naming it; a missing ONNX package ends the command with exit code 1 and the extra to
    install.

    Args:
        argv: the command-line arguments (``--help``); ``None``: ``sys.argv[1:]``.
    """
    ap = argparse.ArgumentParser(
        prog="monai-srb export", description="Export a monai_srb bundle's network to TorchScript and ONNX."
    )
    ap.add_argument("--bundle_root", required=True, help="the bundle folder, e.g. bundles/srb_skin_lesion_segmentation")
    ap.add_argument("--config_file", default=None, help="default: <bundle_root>/configs/train.json")
    ap.add_argument("--ckpt_file", default=None, help="default: the config's output_dir/models/model.pt")
    ap.add_argument("--out_dir", default="exported")
    ap.add_argument("--input_shape", type=int, nargs="+", default=None,
                    help="(batch, channels, *spatial); default: batch 1 at the bundle's patch_size or image_size")
    ap.add_argument("--format", nargs="+", default=["ts", "onnx"], choices=EXPORT_FORMATS,
                    help="ts (TorchScript), onnx (ONNX, checked with ONNX Runtime), pt2 (torch.export; dynamic batch "
                    "and spatial size, but for SRB_A); default: ts onnx")
    args, extra = ap.parse_known_args(argv)
    try:
        overrides = _cli_overrides(extra)
        config_file, meta_file = _check_paths(args)
    except ValueError as e:
        ap.error(str(e))
    if "onnx" in args.format:
        try:
            _require_onnx()
        except ModuleNotFoundError as e:
            ap.exit(1, f"{ap.prog}: error: {e}\n")
    try:
        parser, ckpt, network = _bundle_network(config_file, meta_file, args, overrides)
        shape = check_input_shape(args.input_shape or bundle_input_shape(parser), network, parser)
    except ValueError as e:
        ap.error(str(e))
    try:
        os.makedirs(args.out_dir, exist_ok=True)
    except OSError as e:  # a parent that is a file, no permission
        ap.error(f"argument --out_dir: {args.out_dir!r} cannot be made a folder: {e}")
    written = []
    if "ts" in args.format:
        written.append(export_torchscript(network, os.path.join(args.out_dir, "model.ts"), shape))
    if "onnx" in args.format:
        written.append(export_onnx(network, os.path.join(args.out_dir, "model.onnx"), shape))
    if "pt2" in args.format:
        # a second size to check the dynamic dims: twice each spatial size (the same multiples), batch 2
        other = [] if holds_fixed_size_transform(network) else [[2, shape[1], *[2 * s for s in shape[2:]]]]
        written.append(export_pt2(network, os.path.join(args.out_dir, "model.pt2"), shape, other))
    print(f"exported {ckpt} for input {['batch'] + shape[1:]}:\n  " + "\n  ".join(written))


if __name__ == "__main__":
    main()
