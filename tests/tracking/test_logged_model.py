from __future__ import annotations

import json
import re

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import scoring_server
from monai.networks.nets import BasicUNet

from monai_srb.nets import SRBDenseNet121, SRBUNet
from monai_srb.tracking.logged_model import (
    INPUT_METADATA_KEY,
    ModelInputError,
    input_contract,
    log_network,
    model_signature,
)

SIZE = 32  # the input example's size; the model takes others
SMALL = (4, 4, 8, 8, 8, 4)
EXPECTED = r"the model takes float32 \(batch, 3, H, W\), each of H, W at least 16, "


def _network() -> SRBUNet:
    torch.manual_seed(0)
    net = SRBUNet(2, 3, 2, features=SMALL, srb_positions=("before_up4", "after_up1")).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("alpha"):
                p.fill_(0.5)  # let the blocks contribute
    return net


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A small SRBUNet logged by ``log_network`` into a SQLite store: (network, ModelInfo, pyfunc model)."""
    tmp = tmp_path_factory.mktemp("mlflow")
    net = _network()
    with pytest.MonkeyPatch.context() as patch:  # set_tracking_uri also sets MLFLOW_TRACKING_URI: undone after
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp}/mlflow.db")
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        client = mlflow.MlflowClient()
        experiment = client.create_experiment("logged", artifact_location=(tmp / "mlartifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            info = log_network(net, [1, 3, SIZE, SIZE], pip_requirements=["torch"])
        model = mlflow.pyfunc.load_model(info.model_uri)
        yield net, info, model
    mlflow.set_tracking_uri(None)


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


# (id, input, the float32 array the network sees): any batch and spatial size, float dtypes cast to float32
TAKEN = [
    ("64px", _rng().random((1, 3, 64, 64), dtype=np.float32), None),
    ("batch3_48x32", _rng().random((3, 3, 48, 32), dtype=np.float32), None),
    ("32x16", _rng().random((1, 3, 32, 16), dtype=np.float32), None),  # a 2 x 1 deepest map is enough
    ("float64", _rng().random((2, 3, 32, 32)), None),
    ("float16", _rng().random((1, 3, 32, 32)).astype(np.float16), None),
    ("nested_list", _rng().random((1, 3, 32, 32)).tolist(), None),
    ("tensor", torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)), None),
]


@pytest.mark.parametrize("model_input", [c[1] for c in TAKEN], ids=[c[0] for c in TAKEN])
def test_pyfunc_takes_any_size_and_float_dtype(logged, model_input):
    net, _, model = logged
    x = np.asarray(model_input, dtype=np.float32)
    out = model.predict(model_input)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert out.dtype == np.float32 and out.shape == (x.shape[0], 2, *x.shape[2:])
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


# (id, input, words the message must hold after "got shape ... dtype ...:")
REFUSED = [
    ("uint8", (_rng().random((1, 3, 32, 32)) * 255).astype(np.uint8),
     r"got shape \(1, 3, 32, 32\) dtype uint8: dtype uint8 is not scaled by the model; apply the bundle's intensity "
     r"preprocessing \(e.g. x / 255 for the skin bundle's 8-bit images\) and send float32\."),
    ("int64", np.zeros((1, 3, 32, 32), dtype=np.int64), r"got shape .* dtype int64: dtype int64 is not scaled by"),
    ("bool", np.zeros((1, 3, 32, 32), dtype=bool), r"got shape .* dtype bool: dtype bool is not scaled by"),
    ("nhwc", _rng().random((1, 32, 32, 3), dtype=np.float32),
     r"got shape \(1, 32, 32, 3\) dtype float32: 32 channels instead of 3; channels last\? move them first, "
     r"x.transpose\(0, 3, 1, 2\)\."),
    ("one_channel", _rng().random((1, 1, 32, 32), dtype=np.float32),
     r"got shape \(1, 1, 32, 32\) dtype float32: 1 channel instead of 3\."),
    ("no_batch_axis", _rng().random((3, 32, 32), dtype=np.float32),
     r"got shape \(3, 32, 32\) dtype float32: 3 dims instead of 4; add a batch axis, x\[None\]\."),
    ("5d", np.zeros((1, 3, 32, 32, 32), dtype=np.float32), r"got shape \(1, 3, 32, 32, 32\) .*: 5 dims instead of 4\."),
    ("empty_batch", np.zeros((0, 3, 32, 32), dtype=np.float32),
     r"got shape \(0, 3, 32, 32\) dtype float32: an empty batch\."),
    ("8px", np.zeros((1, 3, 8, 32), dtype=np.float32),
     r"got shape \(1, 3, 8, 32\) dtype float32: spatial size \[8, 32\], below 16 along an axis\."),
    ("ragged", [[[[0.0] * 32] * 32] * 3, [[[0.0] * 32] * 31] * 3], r"got a nested list whose rows differ in length\."),
    ("dataframe", pd.DataFrame({"a": [0.0]}), r"got a DataFrame: send one array \(JSON: \{\"inputs\": \[...\]\}\)\."),
]


@pytest.mark.parametrize("model_input, match", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_pyfunc_refuses_with_the_expected_and_received_shape_and_dtype(logged, model_input, match):
    _, _, model = logged
    with pytest.raises(ModelInputError, match=EXPECTED + match) as error:
        model.predict(model_input)
    assert isinstance(error.value, ValueError)
    assert len(str(error.value)) < 300  # never the array's values, which MLflow's schema enforcement printed


def test_the_networks_own_check_reaches_the_caller(logged):
    _, _, model = logged
    # 16 x 16 passes the max-poolings, but instance norm needs 2 positions in the deepest map
    with pytest.raises(ModelInputError, match=r"SRBUNet with instance norm needs a deepest map .*\[1, 3, 16, 16\]"):
        model.predict(np.zeros((1, 3, 16, 16), dtype=np.float32))


def test_both_flavours_signature_and_contract(logged):
    net, info, _ = logged
    torch_model = mlflow.pytorch.load_model(info.model_uri)
    assert isinstance(torch_model, SRBUNet)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in torch_model.state_dict().items())
    assert info.signature.inputs is None  # MLflow would enforce an input schema before the model's own checks
    (output,) = info.signature.outputs.inputs
    assert (output.type, output.shape) == (np.dtype(np.float32), (-1, 2, -1, -1))  # any batch, any size
    assert info.metadata[INPUT_METADATA_KEY] == {"channels": 3, "spatial_dims": 2, "min_spatial_size": 16,
                                                  "spatial_size": None, "dtype": "float32"}
    assert info.saved_input_example_info is not None


def test_served_json_gets_predictions_or_a_400_with_the_message(logged):
    net, _, model = logged
    # what the README's curl sends: JSON numbers, which the server reads as a float64 array
    body = json.dumps({"inputs": np.full((1, 3, 32, 48), 0.5).tolist()})
    answer = scoring_server.invocations(body, "application/json", model, None)
    assert answer.status == 200
    with torch.no_grad():
        expected = net(torch.full((1, 3, 32, 48), 0.5)).numpy()
    np.testing.assert_allclose(np.asarray(json.loads(answer.response)["predictions"]), expected, rtol=1e-5, atol=1e-6)
    channels_last = json.dumps({"inputs": np.zeros((1, 32, 32, 3)).tolist()})
    with pytest.raises(MlflowException) as error:
        scoring_server.invocations(channels_last, "application/json", model, None)
    assert error.value.get_http_status_code() == 400
    # the server prefixes the message with its own "Failed to predict data '<values>'"; ours ends it
    assert re.search(EXPECTED + r"got shape \(1, 32, 32, 3\) dtype float64: 32 channels instead of 3;",
                     json.loads(error.value.serialize_as_json())["message"])


# (id, network factory, example shape, output shape, expected contract entries, expected output TensorSpec shape)
CONTRACTS = [
    ("srb_unet", _network, [1, 3, 32, 32], [1, 2, 32, 32], {"min_spatial_size": 16, "spatial_size": None},
     (-1, 2, -1, -1)),
    ("srb_a_unet", lambda: SRBUNet(2, 1, 2, features=SMALL, block="srb_aom", spatial_size=32), [1, 1, 32, 48],
     [1, 2, 32, 48], {"min_spatial_size": 16, "spatial_size": [32, 48]}, (-1, 2, 32, 48)),
    ("densenet", lambda: SRBDenseNet121(2, 1, 14, srb_after=[]), [1, 1, 64, 64], [1, 14],
     {"min_spatial_size": 29, "spatial_size": None}, (-1, 14)),
    ("basic_unet_3d", lambda: BasicUNet(3, 1, 2, features=SMALL), [1, 1, 32, 32, 16], [1, 2, 32, 32, 16],
     {"min_spatial_size": 1, "spatial_dims": 3}, (-1, 2, -1, -1, -1)),
]


@pytest.mark.parametrize("build, example, output, entries, spec", [c[1:] for c in CONTRACTS],
                         ids=[c[0] for c in CONTRACTS])
def test_input_contract_and_output_signature(build, example, output, entries, spec):
    contract = input_contract(build(), example)
    assert contract["channels"] == example[1] and {k: contract[k] for k in entries} == entries
    assert model_signature(output, contract).outputs.inputs[0].shape == spec


def test_input_contract_needs_2_or_3_spatial_dims():
    message = r"example_shape must be \(batch, channels, 2 or 3 spatial dims\), got \[1, 3\]"
    with pytest.raises(ValueError, match=message):
        input_contract(_network(), [1, 3])
