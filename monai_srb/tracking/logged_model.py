"""
The network a training run logs as its MLflow model (:func:`log_best_model`, with the best checkpoint's weights):
one model with two flavours, ``pytorch`` (``mlflow.pytorch.load_model("runs:/<id>/model")`` gives the ``nn.Module``)
and ``python_function`` (``mlflow.pyfunc.load_model``, ``mlflow models serve``), whose implementation,
:class:`LoggedNetwork`, checks and converts its input itself.

Why the ``python_function`` flavour is this module and the signature has no input schema: MLflow enforces an input
schema before the model sees the data, a ``TensorSpec`` by exact dtype and by every fixed dim, and its refusal quotes
the array's values (1,600 characters for one 32 x 32 image). A float64 array (NumPy's default), an image of another
size than the input example and a channels-last image all met that refusal. The input contract is in the model's
metadata instead (:data:`INPUT_METADATA_KEY`: channels, spatial dims, the smallest size, the one size an SRB_A
network takes), :class:`LoggedNetwork` checks it with a short message giving the expected and the received shape
and dtype, and the output schema is a float32 ``TensorSpec`` with -1 for the batch and the spatial dims.

Input dtypes: float32 is used as it is; float16 and float64 are cast to float32 (exactly, and rounded to the
precision the network computes in). Integer and bool arrays are refused, not scaled: the bundles preprocess
intensities differently (skin: ``ScaleIntensityRange`` 0..255 to 0..1; chest X-ray: ``ScaleIntensity``, each image
min-max to [0, 1]; 3D: ``NormalizeIntensity``, a z-score), so no one scaling of a uint8 array is right for a model
that does not know its bundle; the message says to apply the bundle's preprocessing and send float32.
"""

from __future__ import annotations

import copy
import importlib.metadata
import inspect
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.models.model import MLMODEL_FILE_NAME
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import Schema, TensorSpec
from torch import nn

from monai_srb.spectral.base import holds_fixed_size_transform
from monai_srb.tracking.run_params import unwrap
from monai_srb.tracking.runs import CHECKPOINT_SHA256_TAG, file_sha256

__all__ = [
    "INPUT_METADATA_KEY",
    "LoggedNetwork",
    "ModelInputError",
    "input_contract",
    "log_best_model",
    "log_network",
    "model_signature",
    "pip_requirements",
    "save_model",
]

logger = logging.getLogger(__name__)

# Key of the input contract in the MLmodel file's ``metadata``.
INPUT_METADATA_KEY = "srb_input"
_AXES = {2: "H, W", 3: "D, H, W"}


class ModelInputError(MlflowException, ValueError):
    """
    An input :class:`LoggedNetwork` refuses: a ``ValueError`` to Python callers, and an MLflow
    ``INVALID_PARAMETER_VALUE`` (HTTP 400 with this message) from ``mlflow models serve``, whose answer to any other
    exception is a generic "unexpected error".
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


def input_contract(network: nn.Module, example_shape: Sequence[int]) -> dict[str, Any]:
    """
    What :class:`LoggedNetwork` checks, stored in the model's metadata under :data:`INPUT_METADATA_KEY`.

    Args:
        network: the network logged; its ``min_input_size`` (every network of :mod:`monai_srb.nets`; 1 when it has
            none) is the smallest spatial size, and an SRB_A in it fixes the spatial size to the example's.
        example_shape: (batch, channels, *spatial) of the input example.

    Returns:
        ``{"channels", "spatial_dims", "min_spatial_size", "spatial_size" (a list, or None for any size), "dtype"}``.

    Raises:
        ValueError: when ``example_shape`` does not have 2 or 3 spatial dims.
    """
    shape = [int(s) for s in example_shape]
    if len(shape) - 2 not in _AXES:
        raise ValueError(f"example_shape must be (batch, channels, 2 or 3 spatial dims), got {shape}.")
    fixed = holds_fixed_size_transform(network)
    return {
        "channels": shape[1],
        "spatial_dims": len(shape) - 2,
        "min_spatial_size": int(getattr(network, "min_input_size", 1)),
        "spatial_size": shape[2:] if fixed else None,
        "dtype": "float32",
    }


def model_signature(output_shape: Sequence[int], contract: Mapping[str, Any]) -> ModelSignature:
    """
    The logged model's signature: no input schema (see the module docstring), and the output as a float32
    ``TensorSpec`` with -1 for the batch and, for a dense output, for the spatial dims the input's size sets.

    Args:
        output_shape: the network's output shape on the input example, (batch, out_channels[, *spatial]).
        contract: the :func:`input_contract`.
    """
    shape = [-1, int(output_shape[1])]
    if len(output_shape) > 2:
        fixed = contract.get("spatial_size")
        shape += [int(s) for s in output_shape[2:]] if fixed else [-1] * (len(output_shape) - 2)
    return ModelSignature(outputs=Schema([TensorSpec(np.dtype(np.float32), tuple(shape))]))


class LoggedNetwork:
    """
    The ``python_function`` implementation of the logged model: checks the input against the contract, casts
    float16 / float64 to float32 and returns the network's float32 output (logits) as a NumPy array.

    Args:
        network: the network, in eval mode.
        contract: the :func:`input_contract` it was logged with.
        device: where the network runs.
    """

    def __init__(self, network: nn.Module, contract: Mapping[str, Any], device: str | torch.device = "cpu") -> None:
        self.network = network
        self.channels = int(contract["channels"])
        self.spatial_dims = int(contract["spatial_dims"])
        self.min_spatial_size = int(contract.get("min_spatial_size", 1))
        fixed = contract.get("spatial_size")
        self.spatial_size = None if fixed is None else [int(s) for s in fixed]
        self.device = torch.device(device)

    def expected(self) -> str:
        """What the model takes, in words, e.g. ``float32 (batch, 3, H, W), H and W at least 16``."""
        if self.spatial_size is not None:
            return f"float32 (batch, {self.channels}, {', '.join(map(str, self.spatial_size))})"
        axes = _AXES[self.spatial_dims]
        at_least = "" if self.min_spatial_size <= 1 else f", each of {axes} at least {self.min_spatial_size}"
        return f"float32 (batch, {self.channels}, {axes}){at_least}"

    def check_input(self, model_input: Any) -> np.ndarray:
        """
        ``model_input`` as a C-contiguous float32 array, checked against the contract.

        Args:
            model_input: a NumPy array (what ``mlflow models serve`` makes of ``{"inputs": [...]}``), a nested list
                or a CPU tensor, in shape (batch, channels, *spatial).

        Raises:
            ModelInputError: (a ``ValueError``) on anything else, a wrong number of dims or channels, an empty batch,
                a spatial size below the minimum (or, for SRB_A, not the one size), or a dtype that is not floating
                point; the message gives the expected and the received shape and dtype, never the values.
        """
        if isinstance(model_input, torch.Tensor):
            model_input = model_input.detach().cpu().numpy()
        if isinstance(model_input, (list, tuple)):
            try:
                model_input = np.asarray(model_input)
            except ValueError:  # NumPy refuses ragged nested lists
                raise ModelInputError(
                    f"the model takes {self.expected()}, got a nested list whose rows differ in length."
                ) from None
        if not isinstance(model_input, np.ndarray):
            raise ModelInputError(
                f"the model takes {self.expected()}, got a {type(model_input).__name__}: send one array "
                '(JSON: {"inputs": [...]}).'
            )
        shape, dtype, dims = model_input.shape, model_input.dtype, self.spatial_dims + 2
        problem = ""
        if model_input.ndim != dims:
            problem = f"{model_input.ndim} dims instead of {dims}"
            if model_input.ndim == dims - 1:
                problem += "; add a batch axis, x[None]"
        elif shape[1] != self.channels:
            problem = f"{shape[1]} channel{'' if shape[1] == 1 else 's'} instead of {self.channels}"
            if shape[-1] == self.channels:
                order = ", ".join(map(str, (0, dims - 1, *range(1, dims - 1))))
                problem += f"; channels last? move them first, x.transpose({order})"
        elif shape[0] == 0:
            problem = "an empty batch"
        elif self.spatial_size is not None and list(shape[2:]) != self.spatial_size:
            problem = f"spatial size {list(shape[2:])}, and an SRB_A network takes only the size it was built for"
        elif min(shape[2:]) < self.min_spatial_size:
            problem = f"spatial size {list(shape[2:])}, below {self.min_spatial_size} along an axis"
        elif dtype.kind != "f":
            problem = (
                f"dtype {dtype} is not scaled by the model; apply the bundle's intensity preprocessing (e.g. x / 255 "
                "for the skin bundle's 8-bit images) and send float32"
            )
        if problem:
            got = f"got shape {tuple(shape)} dtype {dtype}"
            raise ModelInputError(f"the model takes {self.expected()}, {got}: {problem}.")
        return np.ascontiguousarray(model_input, dtype=np.float32)

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> np.ndarray:
        """
        The network's output on ``model_input``.

        Args:
            model_input: see :meth:`check_input`.
            params: unused (MLflow's inference parameters).

        Returns:
            float32 array, (batch, out_channels, *spatial) for a segmentation network, (batch, out_channels) for a
            classifier.

        Raises:
            ModelInputError: on an input :meth:`check_input` refuses, or one the network's own checks refuse (e.g. an
                SRBUNet with instance norm whose deepest map would have one position).
        """
        x = torch.from_numpy(self.check_input(model_input)).to(self.device)
        with torch.no_grad():
            try:
                y = self.network(x)
            except ModelInputError:
                raise
            except ValueError as e:  # the networks' and blocks' input checks name what is wrong
                raise ModelInputError(str(e)) from e
        return y.float().cpu().numpy()


def save_model(path: str, mlflow_model: Model, pytorch_model: nn.Module, **kwargs: Any) -> None:
    """
    The flavour's ``save_model`` (``mlflow.models.Model.log`` calls it): ``mlflow.pytorch.save_model``, then the
    ``python_function`` flavour pointed at this module's ``_load_pyfunc``.

    Args:
        path: the local folder of the model.
        mlflow_model: the model's metadata, holding :data:`INPUT_METADATA_KEY`.
        pytorch_model: the network.
        kwargs: further ``mlflow.pytorch.save_model`` arguments (signature, input example, requirements).
    """
    mlflow.pytorch.save_model(pytorch_model, path, mlflow_model=mlflow_model, **kwargs)
    conf = mlflow_model.flavors[mlflow.pyfunc.FLAVOR_NAME]
    conf[mlflow.pyfunc.MAIN] = __name__
    # without "data", _load_pyfunc gets the model's folder, which mlflow.pytorch.load_model reads
    conf.pop(mlflow.pyfunc.DATA, None)
    mlflow_model.save(os.path.join(path, MLMODEL_FILE_NAME))


def _load_pyfunc(path: str, model_config: Mapping[str, Any] | None = None) -> LoggedNetwork:
    """The ``python_function`` loader: the pytorch flavour's network in a :class:`LoggedNetwork`."""
    device = (model_config or {}).get("device") or "cpu"
    network = mlflow.pytorch.load_model(path, map_location=device).eval()
    return LoggedNetwork(network, Model.load(path).metadata[INPUT_METADATA_KEY], device)


def log_network(
    network: nn.Module,
    example_shape: Sequence[int],
    name: str = "model",
    registered_model_name: str | None = None,
    pip_requirements: Sequence[str] | None = None,
) -> Any:
    """
    Log ``network`` to the active MLflow run as the model ``name``: both flavours, an all-zero input example of
    ``example_shape``, the :func:`model_signature` and the :func:`input_contract` in its metadata.

    The network is pickled (``serialization_format="pickle"``), not MLflow 3's default ``torch.export``, which
    fixes the example's batch and spatial size.

    Args:
        network: the network, on the CPU and in eval mode.
        example_shape: (batch, channels, *spatial) of the input example.
        name: the model's name in the run.
        registered_model_name: also register the model under this name.
        pip_requirements: the model's requirements, given so that MLflow does not infer them.

    Returns:
        MLflow's ``ModelInfo``.

    Raises:
        ValueError: on an ``example_shape`` without 2 or 3 spatial dims, and whatever the network raises on it.
    """
    contract = input_contract(network, example_shape)
    example = np.zeros([int(s) for s in example_shape], dtype=np.float32)
    with torch.no_grad():
        output = network(torch.from_numpy(example))
    # MLflow 3 names the model by ``name`` (``artifact_path`` is deprecated but has no default), MLflow 2 by the path
    named = "name" in inspect.signature(Model.log).parameters
    options: dict[str, Any] = {"artifact_path": None, "name": name} if named else {"artifact_path": name}
    if "serialization_format" in inspect.signature(mlflow.pytorch.save_model).parameters:
        options["serialization_format"] = "pickle"
    return Model.log(
        flavor=sys.modules[__name__],
        pytorch_model=network,
        input_example=example,
        signature=model_signature(list(output.shape), contract),
        registered_model_name=registered_model_name,
        pip_requirements=None if pip_requirements is None else list(pip_requirements),
        metadata={INPUT_METADATA_KEY: contract},
        **options,
    )


def pip_requirements() -> list[str]:
    """What the logged model needs, pinned to this environment (given, so that MLflow does not probe for it)."""
    # local version labels (+cpu, +cu121) are not on PyPI
    return [f"{name}=={importlib.metadata.version(name).split('+')[0]}" for name in ("torch", "monai", "monai_srb")]


def log_best_model(
    client: mlflow.MlflowClient,
    run_id: str,
    network: nn.Module,
    example_shape: Sequence[int],
    checkpoint: str | None = None,
    registered_model_name: str | None = None,
) -> Any:
    """
    Log a CPU copy of ``network``, with the weights of ``checkpoint`` when that file exists, as the model ``model``
    of run ``run_id`` (:func:`log_network`), registered as ``registered_model_name`` when set; the run is tagged
    with the checkpoint's sha256 (:data:`~monai_srb.tracking.runs.CHECKPOINT_SHA256_TAG`), by which evaluate runs
    find it.

    Args:
        client: the client of the run's tracking store.
        run_id: the run.
        network: the network trained, also inside ``DistributedDataParallel``; it is copied, not changed.
        example_shape: (batch, channels, *spatial) of the input example.
        checkpoint: the best checkpoint (a state dict, or one under ``"model"``/``"network"``); ``None`` or a missing
            file (a warning) logs the network's own weights.
        registered_model_name: also register the model under this name in the Model Registry.

    Returns:
        MLflow's ``ModelInfo``.
    """
    network = copy.deepcopy(unwrap(network)).cpu().eval()
    if checkpoint and os.path.isfile(checkpoint):
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        for key in ("model", "network"):
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
        network.load_state_dict(state)
        client.set_tag(run_id, CHECKPOINT_SHA256_TAG, file_sha256(checkpoint))
    elif checkpoint:
        logger.warning("best checkpoint %s not found: the MLflow model holds the last weights.", checkpoint)
    # Model.log logs to the fluent API's active run of the global tracking URI: point both at this run, then
    # restore the URI (set_tracking_uri also sets MLFLOW_TRACKING_URI, which MONAI's handlers read first).
    previous, previous_env = mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(client.tracking_uri)
    try:
        with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
            return log_network(
                network, example_shape, registered_model_name=registered_model_name, pip_requirements=pip_requirements()
            )
    finally:
        mlflow.set_tracking_uri(previous_env)  # None: unset again
        if mlflow.get_tracking_uri() != previous:
            mlflow.set_tracking_uri(previous)
