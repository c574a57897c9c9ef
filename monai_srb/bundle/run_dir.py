"""
What a run keeps in its ``output_dir`` besides its outputs: the lock that keeps a second run out of it
(:class:`OutputDirLock`), and the network overrides stored beside the checkpoints (:func:`save_network_config`),
from which ``monai-srb export`` rebuilds the network they were trained with (:func:`load_network_config`).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import warnings
from collections.abc import Mapping
from typing import Any

from monai_srb.bundle.overrides import _shown_last, as_bool

__all__ = ["NETWORK_CONFIG_FILE", "OutputDirLock", "load_network_config", "read_json", "save_network_config"]

logger = logging.getLogger(__name__)

NETWORK_CONFIG_FILE = "network_config.json"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class OutputDirLock:
    """
    A lock file ``<output_dir>/run.lock`` holding the PID and host of the run that writes there, created
    atomically (``O_CREAT | O_EXCL``) so that two runs never share an ``output_dir``: the second one
    refuses to start, naming the first one's PID. A lock whose PID is gone on this host (a run killed
    with ``kill -9``) is taken over with a warning. The lock is removed by :meth:`release` (the bundles'
    ``finalize``) and, when a run fails, at interpreter exit. A lock already held by this process (an
    earlier in-process run that failed before ``finalize``) is taken over silently.

    Under DDP only rank 0 should pass ``enabled=True``: one lock per job.

    Not ``filelock.FileLock``: its OS lock cannot say who holds it. The refusal must name the running PID, which
    ``filelock`` does not store. On a shared file system, ``flock`` is not reliable across hosts, while an
    ``O_EXCL`` file naming its host is. ``filelock``'s ``SoftFileLock`` is an ``O_EXCL`` file too, but with no owner
    in it, so a killed run's lock could never be told from a live one.

    Args:
        output_dir: the run's output folder; created if missing.
        enabled: ``False`` makes :meth:`acquire` and :meth:`release` no-ops (the other DDP ranks).
        filename: the lock file's name inside ``output_dir``.
    """

    def __init__(self, output_dir: str, enabled: bool = True, filename: str = "run.lock") -> None:
        self.output_dir = str(output_dir)
        self.enabled = as_bool(enabled, "enabled")
        self.path = os.path.join(self.output_dir, filename)
        self.held = False

    def _owner(self) -> tuple[int | None, str]:
        """PID and host written in the lock file; ``(None, '')`` when it is unreadable or gone."""
        try:
            with open(self.path) as f:
                lines = f.read().split()
            return int(lines[0]), lines[1] if len(lines) > 1 else ""
        except (OSError, ValueError, IndexError):
            return None, ""

    def acquire(self) -> OutputDirLock:
        """
        Take the lock; returns ``self``.

        Raises:
            RuntimeError: when another live run holds it, naming the directory and that run's PID.
        """
        if not self.enabled or self.held:
            return self
        os.makedirs(self.output_dir, exist_ok=True)
        me, host = os.getpid(), socket.gethostname()
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid, owner_host = self._owner()
                if pid is not None and pid != me and (owner_host not in ("", host) or _pid_alive(pid)):
                    where = f" on host {owner_host}" if owner_host not in ("", host) else ""
                    raise _shown_last(RuntimeError(
                        f"output_dir {self.output_dir!r} is in use by another run (PID {pid}{where}; lock file "
                        f"{self.path}). Wait for it to end or pass another --output_dir; if no run is using "
                        "it, delete the lock file."
                    )) from None
                if pid != me:
                    # an empty lock is a run killed between creating and writing it (or one in that instant)
                    stale = f"PID {pid}, which is no longer running" if pid is not None else "no readable PID"
                    warnings.warn(
                        f"output_dir {self.output_dir!r}: taking over the stale lock {self.path} ({stale}: a "
                        "killed run); its outputs there may be incomplete.",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                # Removing a stale lock and creating ours are two steps: two runs taking over the same stale
                # lock at the same instant could both get through; a retry narrows but cannot close that gap.
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{me}\n{host}\n")
            self.held = True
            atexit.register(self.release)
            logger.info("locked output_dir %s (%s)", self.output_dir, self.path)
            return self
        raise RuntimeError(f"could not take the lock {self.path} of output_dir {self.output_dir!r}.")

    def release(self) -> None:
        """Remove the lock file if this process holds it; safe to call more than once."""
        if not self.held:
            return
        self.held = False
        atexit.unregister(self.release)
        if self._owner()[0] == os.getpid():
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> OutputDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def save_network_config(ckpt_dir: str, overrides: Mapping[str, Any], network: Any = None) -> str:
    """
    Write ``<ckpt_dir>/network_config.json``: the bundle ids (values as this run resolved them) that
    ``network_def`` is built from, so that ``python -m monai_srb.export`` rebuilds the network the
    checkpoints were trained with (e.g. at a non-default ``image_size``). Returns the file's path.

    Args:
        ckpt_dir: the folder the run's checkpoints go to; created if missing.
        overrides: bundle id -> JSON-serialisable value, e.g. ``{"image_size": 64, "block": "srb_fft"}``.
        network: the built ``network_def``; its class is stored as ``network_def#_target_`` (a run may
            have swapped the class by that override).

    Raises:
        ValueError: when a value cannot be written as JSON.
    """
    def plain(v: Any) -> Any:
        return list(v) if isinstance(v, tuple) else v

    content = {"overrides": {str(k): plain(v) for k, v in overrides.items()}}
    if network is not None:
        content["overrides"]["network_def#_target_"] = f"{type(network).__module__}.{type(network).__qualname__}"
    try:
        text = json.dumps(content, indent=4, sort_keys=True)
    except TypeError as e:
        raise ValueError(f"network overrides for {ckpt_dir!r} must be JSON values, got {dict(overrides)!r}: {e}") from e
    os.makedirs(ckpt_dir, exist_ok=True)
    path = os.path.join(ckpt_dir, NETWORK_CONFIG_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, path)
    return path


def read_json(path: str | os.PathLike) -> Any:
    """
    The content of the JSON file ``path``.

    Raises:
        ValueError: naming the file, when it cannot be read or is not JSON.
    """
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a readable JSON file: {e}") from e


def load_network_config(ckpt_dir: str) -> dict[str, Any]:
    """
    The overrides :func:`save_network_config` stored in ``ckpt_dir``; ``{}`` when there is no such file
    (checkpoints of a run from before the file existed).

    Raises:
        ValueError: when the file is not a JSON object with an ``"overrides"`` object.
    """
    path = os.path.join(ckpt_dir, NETWORK_CONFIG_FILE)
    if not os.path.isfile(path):
        return {}
    content = read_json(path)
    if not isinstance(content, dict) or not isinstance(content.get("overrides"), dict):
        raise ValueError(f"{path} must hold {{'overrides': {{id: value}}}}, got {content!r}.")
    return dict(content["overrides"])
