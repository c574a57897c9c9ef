"""
Where an MLflow run goes: the default store of an ``output_dir``, whether a bundle's ``tracking_uri`` turns
tracking on, a server that must answer before a run starts, and the MLFlowHandler entries MONAI's own
``--tracking mlflow`` appends kept off.
"""

from __future__ import annotations

import logging
import os
import ssl
import urllib.error
import urllib.request

__all__ = ["check_tracking_server", "default_tracking_uri", "disable_monai_mlflow_handlers", "tracking_enabled"]

logger = logging.getLogger(__name__)

# Values that turn tracking off as a tracking_uri (`--tracking_uri null` reaches the config as "null").
_TRACKING_OFF = ("", "null", "none", "off", "false")


def check_tracking_server(tracking_uri: str, timeout: float = 5.0) -> None:
    """
    Fail fast when an ``http(s)://`` tracking URI does not answer: MLflow's own client retries a dead
    server for about 4 minutes before it raises. Any HTTP answer (even an error status) counts as alive;
    other URIs (``sqlite:``, ``file:``, paths) are not checked.

    Args:
        tracking_uri: the MLflow tracking URI.
        timeout: seconds to wait for the connection and the answer.

    Raises:
        ValueError: when ``timeout`` is not positive, or nothing answers at ``tracking_uri`` within it.
    """
    if not timeout > 0:
        raise ValueError(f"tracking_timeout must be a positive number of seconds, got {timeout!r}.")
    if not tracking_uri.lower().startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(tracking_uri, timeout=timeout):
            pass
    except urllib.error.HTTPError as answer:
        answer.close()
    except OSError as e:  # URLError (refused, unknown host), TimeoutError
        if isinstance(getattr(e, "reason", e), ssl.SSLError):
            return  # a TLS server answers; MLflow's own TLS settings decide whether it is trusted
        raise ValueError(
            f"MLflow tracking_uri {tracking_uri!r} does not answer within {timeout} s ({getattr(e, 'reason', e)}): "
            "start `mlflow server` there, correct the URI, or leave tracking_uri unset for the local SQLite store."
        ) from e


def default_tracking_uri(output_dir: str) -> str:
    """
    ``sqlite:///<output_dir>/mlflow.db``: MLflow 3 deprecates the file store that MONAI's default
    ``file:`` URI points at, so the bundles default to a SQLite store next to their other outputs.
    Nothing is created here: :class:`SRBMLFlowHandler` makes the folder when it opens the store.
    """
    return f"sqlite:///{os.path.abspath(os.path.join(output_dir, 'mlflow.db'))}"


def tracking_enabled(tracking_uri: str | None) -> bool:
    """
    Whether a bundle's ``tracking_uri`` asks for MLflow tracking: ``None`` (``--tracking_uri None``) and
    ``"null"``, ``"none"``, ``"off"``, ``"false"`` or ``""`` in any case (``--tracking_uri null``) turn it off.

    Args:
        tracking_uri: the bundle's ``tracking_uri`` id.
    """
    return tracking_uri is not None and str(tracking_uri).strip().lower() not in _TRACKING_OFF


def disable_monai_mlflow_handlers() -> bool:
    """
    The bundles' ``is_not_rank0`` id, named for what it turns off (it was ``skip_monai_tracking``):
    ``python -m monai.bundle run ... --tracking mlflow`` appends MONAI's own ``MLFlowHandler`` to the trainer and
    the evaluator, ``_disabled_`` by ``is_not_rank0``, beside the bundle's :class:`SRBMLFlowHandler`, which logged
    every loss and metric twice. The bundles track themselves, so this id, evaluated only under ``--tracking``,
    says once that MONAI's handlers stay off and returns ``True`` (disabled).
    """
    logger.warning(
        "--tracking mlflow adds nothing to this bundle: it logs to MLflow itself (SRBMLFlowHandler; set "
        "--tracking_uri / --experiment_name), so MONAI's MLFlowHandler entries are disabled and nothing is logged "
        "twice. Turn tracking off with --tracking_uri null."
    )
    return True
