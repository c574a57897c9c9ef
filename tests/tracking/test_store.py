from __future__ import annotations

import logging
import re
import socket
import time

import pytest

from monai_srb.tracking import SRBMLFlowHandler, default_tracking_uri, disable_monai_mlflow_handlers, tracking_enabled


@pytest.mark.parametrize(
    "uri,enabled",
    [(None, False), ("null", False), ("NULL", False), ("None", False), ("off", False), ("", False),
     ("sqlite:///x/mlflow.db", True), ("http://127.0.0.1:5000", True)],
)
def test_tracking_enabled(uri, enabled):
    assert tracking_enabled(uri) is enabled


def test_default_tracking_uri_creates_nothing(tmp_path):
    uri = default_tracking_uri(str(tmp_path / "out"))
    assert uri == f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}" and not (tmp_path / "out").exists()


def test_disable_monai_mlflow_handlers_says_why(caplog):
    with caplog.at_level(logging.WARNING):
        assert disable_monai_mlflow_handlers() is True
    assert "MONAI's MLFlowHandler entries are disabled" in caplog.text


def _dead_port() -> int:
    with socket.socket() as s:  # bound, then closed: nothing listens on it
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_dead_tracking_server_fails_fast_naming_the_uri(tmp_path, scheme):
    uri = f"{scheme}://127.0.0.1:{_dead_port()}"
    start = time.monotonic()
    with pytest.raises(ValueError, match=re.escape(repr(uri))):
        SRBMLFlowHandler(output_dir=str(tmp_path), tracking_uri=uri, tracking_timeout=2.0)
    elapsed = time.monotonic() - start
    print(f"refused after {elapsed:.2f} s")
    assert elapsed < 60  # MLflow's own retries take about 4 minutes


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_tracking_timeout_must_be_positive(tmp_path, timeout):
    with pytest.raises(ValueError, match="tracking_timeout"):
        SRBMLFlowHandler(output_dir=str(tmp_path), tracking_uri="http://127.0.0.1:1", tracking_timeout=timeout)
