"""
A finished training run as a bundle in the MONAI model zoo's layout (``monai-srb package``).

A bundle run leaves in its ``output_dir`` the best checkpoint (``models/model.pt``), the network overrides it was
built with (``models/network_config.json``, :func:`~monai_srb.bundle.run_dir.save_network_config`) and its MLflow
store (``mlflow.db``). :func:`package_run` turns them and the bundle they ran into a folder that the zoo's CI
(``ci/verify_bundle.py`` of Project-MONAI/model-zoo) and MONAI's ``verify_metadata`` accept::

    <out_dir>/
        configs/            the bundle's configs, the run's network overrides written in (inference.json alone
                            builds the trained network), and metadata.json (below)
        models/model.pt     the run's best checkpoint: the default ckpt_path of configs/inference.json
        models/model.ts     the network as TorchScript, where it scripts
        large_files.yml     path, url, sha256 of each model file, as the zoo's download_large_files reads it
        docs/README.md      the bundle's docs, headed by what the packaged model is and how it was trained
        docs/data_license.txt   the licence of the data the run trained on
        LICENSE

``configs/metadata.json`` gets a new ``version`` (a patch bump unless given) with its ``changelog`` line, and its
``eval_metrics`` are the run's own best validation figure of the bundle's key metric (the epoch whose weights
``models/model.pt`` holds: the bundles save the best key-metric checkpoint). The key ``monai_srb_run``
(:data:`RUN_KEY`; the zoo's schema allows keys of one's own) records where that figure comes from: the MLflow run,
the metric's best and last epochs and values, the data set, the checkpoint's sha256, and the ``command``, ``seed``
and ``num_threads`` that produced it. A ``monai.bundle run`` records its tracked values and the seed, but not the
command line or the thread count: the command is rebuilt from the tracked values that differ from the bundle's
``train.json`` (``--command`` gives it as typed), and the thread count must be given (``--num_threads``) unless
the run records a ``num_threads`` param.

    monai-srb package --run_dir runs/skin --bundle_root "$B" --out_dir zoo/srb_skin_lesion_segmentation \\
        --num_threads 2
    python -m monai.bundle run --config_file zoo/srb_skin_lesion_segmentation/configs/inference.json \\
        --bundle_root zoo/srb_skin_lesion_segmentation
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from monai.bundle import ConfigParser
from monai.bundle.reference_resolver import ReferenceResolver
from monai.bundle.utils import ID_SEP_KEY

from monai_srb.bundle.run_dir import NETWORK_CONFIG_FILE, load_network_config, read_json
from monai_srb.spectral.base import holds_fixed_size_transform
from monai_srb.tracking import CHECKPOINT_SHA256_TAG, file_sha256, param_value

# monai_srb.export is imported where it is used: it imports monai_srb.bundle, whose __init__ imports this module.

__all__ = [
    "RUN_KEY",
    "RunRecord",
    "apply_network_overrides",
    "find_training_run",
    "key_metric_name",
    "package_run",
    "read_run_record",
    "validation_figures",
]

# The metadata.json key holding where eval_metrics come from.
RUN_KEY = "monai_srb_run"
LARGE_FILES = "large_files.yml"
DATA_LICENCE = Path("docs") / "data_license.txt"
# What the zoo's CI (ci/verify_bundle.py: necessary_files_list, preferred_files_list) and the MONAI bundle
# specification ask of a bundle folder; the package copies these from the bundle, adding models/ itself.
_BUNDLE_FILES = ("configs/metadata.json", "configs/train.json", "configs/inference.json", "LICENSE", "docs/README.md")
# What the MLflow handler writes over a tracked param with what it read from the network built (describe_network):
# not a value given on the command line.
_DESCRIBED = {"network", "srb_count", "srb_positions", "block", "norm"}
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


@dataclass(frozen=True)
class RunRecord:
    """
    What ``configs/metadata.json``'s :data:`RUN_KEY` says of the training run whose figures ``eval_metrics`` holds.

    Args:
        mlflow_run_id: the MLflow run.
        experiment_name: its experiment.
        key_metric: the validation metric of ``eval_metrics`` (the one the best checkpoint was chosen by).
        best_epoch: the first epoch at the best ``key_metric``: the epoch of ``models/model.pt``.
        best: the best value.
        last_epoch: the last epoch validated.
        last: the value there.
        epochs: the epochs the run was set to train (its ``epochs`` param), or ``None``.
        seed: the run's ``seed`` param, or ``None``.
        num_threads: the torch threads of the training process.
        command: the command that trained it.
        dataset: the data the run trained on: ``synthetic`` or the data set's name.
        checkpoint_sha256: the sha256 of ``models/model.pt``.
    """

    mlflow_run_id: str
    experiment_name: str
    key_metric: str
    best_epoch: int
    best: float
    last_epoch: int
    last: float
    epochs: int | None
    seed: int | None
    num_threads: int
    command: str
    dataset: str
    checkpoint_sha256: str


def _read_json(path: Path) -> dict[str, Any]:
    content = read_json(path)
    if not isinstance(content, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(content).__name__}.")
    return content


def _write_json(path: Path, content: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(content, indent=4) + "\n")


def key_metric_name(train_config: str | os.PathLike) -> str:
    """
    The name of the key validation metric of a bundle's ``train.json`` (``validate#key_metric``): the metric the
    best checkpoint is saved by, and the MLflow metric name of its values (``val_mean_iou``, ``AUC``, ``Dice``).

    Args:
        train_config: the bundle's ``configs/train.json``.

    Raises:
        ValueError: when the config has no ``validate#key_metric`` of one metric.
    """
    parser = ConfigParser()
    parser.read_config(str(train_config))
    key = "validate#key_metric"
    if key not in parser:
        raise ValueError(f"{train_config} has no {key}: pass the metric to package by --metric.")
    raw = parser.get(key)
    if not isinstance(raw, dict):
        # an expression (the chest bundle picks its key metric from the metrics it builds): build it, data-free
        parser.update({"bundle_root": str(Path(train_config).resolve().parents[1]), "dataset_dir": None})
        raw = parser.get_parsed_content(key)
    names = [str(k) for k in raw if not str(k).startswith("_")] if isinstance(raw, Mapping) else []
    if len(names) != 1:
        raise ValueError(f"{key} of {train_config} must name one metric, got {names}: pass --metric.")
    return names[0]


def find_training_run(client: MlflowClient, checkpoint: str | os.PathLike, run_id: str | None = None) -> Run:
    """
    The MLflow run that trained ``checkpoint``: ``run_id`` when given, else the newest run of any experiment of the
    store tagged with the checkpoint's sha256 (:data:`~monai_srb.tracking.CHECKPOINT_SHA256_TAG`: a training run
    tags the best checkpoint it logs as its model). The run must have ended ``FINISHED``.

    Args:
        client: a client of the run's store.
        checkpoint: the checkpoint packaged.
        run_id: the run, when known.

    Raises:
        ValueError: naming the store and the checkpoint, when no run logged it, ``run_id`` is not in the store, or
            the run did not finish.
    """
    store = client.tracking_uri
    if run_id is not None:
        try:
            run = client.get_run(run_id)
        except MlflowException as e:
            raise ValueError(f"argument --run_id: the MLflow store {store} has no run {run_id!r}.") from e
    else:
        sha = file_sha256(str(checkpoint))
        experiments = [e.experiment_id for e in client.search_experiments()]
        found = client.search_runs(
            experiments, filter_string=f"tags.`{CHECKPOINT_SHA256_TAG}` = '{sha}'",
            order_by=["attributes.start_time DESC"],
        )
        if not found:
            raise ValueError(
                f"no run of the MLflow store {store} logged the checkpoint {checkpoint} (sha256 {sha}, tag "
                f"{CHECKPOINT_SHA256_TAG}): a run that did not finish, a store of another run, or a checkpoint "
                "replaced since. Pass the run by --run_id."
            )
        run = found[0]
    if run.info.status != "FINISHED":
        raise ValueError(
            f"MLflow run {run.info.run_id} of {store} is {run.info.status}, not FINISHED: package a finished run."
        )
    return run


def validation_figures(client: MlflowClient, run_id: str, metric: str) -> dict[str, float | int]:
    """
    The best and the last value of the validation ``metric`` a run logged at each epoch (its step):
    ``{"best_epoch", "best", "last_epoch", "last"}``. The best is the highest, at its first epoch, as the bundles'
    checkpoint saver keeps it (a later tie does not replace the best checkpoint).

    Args:
        client: a client of the run's store.
        run_id: the run.
        metric: the metric's MLflow name, e.g. ``val_mean_iou``.

    Raises:
        ValueError: when the run logged no ``metric``, naming the metrics it did log.
    """
    history = sorted((int(m.step), float(m.value)) for m in client.get_metric_history(run_id, metric))
    if not history:
        logged = sorted(client.get_run(run_id).data.metrics)
        raise ValueError(f"MLflow run {run_id} logged no metric {metric!r} (its metrics: {logged}); pass --metric.")
    best_epoch, best = max(history, key=lambda item: (item[1], -item[0]))
    last_epoch, last = history[-1]
    return {"best_epoch": best_epoch, "best": best, "last_epoch": last_epoch, "last": last}


def _run_dataset(run: Run) -> str:
    """The data a run trained on, as it records it: its ``dataset`` tag, else its first MLflow dataset input."""
    tagged = run.data.tags.get("dataset")
    if tagged:
        return str(tagged)
    inputs = getattr(getattr(run, "inputs", None), "dataset_inputs", None) or []
    return str(inputs[0].dataset.name) if inputs else "unknown (the run records no data set)"


def _tracked_values(client: MlflowClient, run: Run) -> dict[str, Any]:
    """
    The tracked values of a run: the ``tracked`` entry of its ``config/run_params.json`` artifact (the values as
    the run used them), else its params (strings), less those the handler wrote from the network built.
    """
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run.info.run_id, "config/run_params.json", tmp)
            tracked = json.loads(Path(path).read_text()).get("tracked")
        except Exception:  # no such artifact (a run given its merged config), or artifacts moved with the folder
            tracked = None
    if isinstance(tracked, dict):
        return tracked
    return {k: v for k, v in run.data.params.items() if k not in _DESCRIBED}


def _cli_value(value: Any) -> str:
    return shlex.quote(value if isinstance(value, str) else repr(value))


def _rebuilt_command(tracked: Mapping[str, Any], train_config: Mapping[str, Any], num_threads: int) -> str:
    """
    ``OMP_NUM_THREADS=<n> python -m monai.bundle run --config_file configs/train.json --bundle_root . --<id> <value>
    ...`` for each tracked id that the bundle's ``train.json`` sets to a plain value (not an expression or a
    reference) and that the run changed. Ids the run does not track (nested ones such as ``network_def#...``) are
    not in it.
    """
    def plain(value: Any) -> bool:
        if isinstance(value, str):
            return not value.startswith(("$", "@", "%"))
        if isinstance(value, (list, tuple)):
            return all(plain(v) for v in value)
        return not isinstance(value, dict)

    parts = [f"OMP_NUM_THREADS={num_threads}", "python -m monai.bundle run --config_file configs/train.json",
             "--bundle_root ."]
    for name, value in tracked.items():
        default = train_config.get(name, ...)
        if default is ... or not plain(default) or param_value(default) == param_value(value):
            continue
        parts.append(f"--{name} {_cli_value(value)}")
    return " ".join(parts)


def _as_int(value: Any, what: str) -> int | None:
    if value is None or str(value) == "None":
        return None
    try:
        return int(str(value))
    except ValueError as e:
        raise ValueError(f"the run's {what} param must be an integer, got {value!r}.") from e


def read_run_record(
    client: MlflowClient,
    run: Run,
    train_config: str | os.PathLike,
    checkpoint: str | os.PathLike,
    metric: str | None = None,
    num_threads: int | None = None,
    command: str | None = None,
) -> RunRecord:
    """
    What the run recorded, as :data:`RUN_KEY` says it (:class:`RunRecord`).

    Args:
        client: a client of the run's store.
        run: the MLflow run (:func:`find_training_run`).
        train_config: the bundle's ``train.json`` as the run read it (its key metric, its defaults).
        checkpoint: the packaged checkpoint.
        metric: the validation metric of ``eval_metrics``; default: the bundle's key metric (:func:`key_metric_name`).
        num_threads: the torch threads the training ran with; default: the run's ``num_threads`` param.
        command: the command that trained the run; default: rebuilt from its tracked values that differ from
            ``train_config``.

    Raises:
        ValueError: when the run logged no ``metric``, records no thread count and none is given, or records one that
            differs from ``num_threads``.
    """
    run_id = run.info.run_id
    metric = metric or key_metric_name(train_config)
    figures = validation_figures(client, run_id, metric)
    params = run.data.params
    recorded = _as_int(params.get("num_threads"), "num_threads")
    if num_threads is not None and num_threads < 1:
        raise ValueError(f"argument --num_threads: must be an integer >= 1, got {num_threads}.")
    if recorded is not None and num_threads is not None and recorded != num_threads:
        raise ValueError(
            f"argument --num_threads: MLflow run {run_id} records num_threads {recorded}, got {num_threads}."
        )
    threads = recorded if recorded is not None else num_threads
    if threads is None:
        raise ValueError(
            f"MLflow run {run_id} records no thread count: pass --num_threads, the torch.get_num_threads() of the "
            "training process (OMP_NUM_THREADS when it was set, else the machine's physical cores)."
        )
    tracked = _tracked_values(client, run)
    if command is None:
        command = _rebuilt_command(tracked, _read_json(Path(train_config)), threads)
    experiment = client.get_experiment(run.info.experiment_id)
    return RunRecord(
        mlflow_run_id=run_id,
        experiment_name=experiment.name,
        key_metric=metric,
        epochs=_as_int(tracked.get("epochs", params.get("epochs")), "epochs"),
        seed=_as_int(tracked.get("seed", params.get("seed")), "seed"),
        num_threads=threads,
        command=command,
        dataset=_run_dataset(run),
        checkpoint_sha256=file_sha256(str(checkpoint)),
        **figures,  # type: ignore[arg-type]
    )


def apply_network_overrides(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """
    ``config`` (a bundle config file's raw content) with each of ``overrides`` (bundle id -> value, as
    ``network_config.json`` stores them: ``image_size``, ``features``, ``network_def#_target_``, ...) set where
    the config defines the id's first part: a config file that runs alone (``inference.json``) then builds the
    network the run trained, and one merged after ``train.json`` (``evaluate.json``) changes nothing of it.

    Args:
        config: the config file's content; not changed.
        overrides: the ids and values to set.

    Raises:
        ValueError: when an id cannot be set in the config (a nested id under a value that is no object).
    """
    parser = ConfigParser(json.loads(json.dumps(config)))
    for key, value in overrides.items():
        if ReferenceResolver.normalize_id(key).split(ID_SEP_KEY)[0] not in config:
            continue
        try:
            parser[key] = value
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"the network override {key}={value!r} cannot be set in the config: {e}") from e
    return parser.get()


def _next_version(version: str) -> str:
    match = _VERSION.match(version)
    if match is None:
        raise ValueError(f"metadata version {version!r} is not MAJOR.MINOR.PATCH: pass the new one by --version.")
    major, minor, patch = (int(g) for g in match.groups())
    return f"{major}.{minor}.{patch + 1}"


def _data_licence(bundle_readme: str, dataset: str, bundle_name: str) -> str:
    """``docs/data_license.txt``: the data the run trained on, then the bundle's "Data licence" section."""
    heading = "\n## Data licence\n"
    if heading not in bundle_readme:
        raise ValueError(f"the docs/README.md of bundle {bundle_name!r} has no '## Data licence' section to name the "
                         "data's licence from.")
    start = bundle_readme.index(heading) + len(heading)
    end = bundle_readme.find("\n## ", start)
    section = bundle_readme[start : end if end >= 0 else None].strip()
    if dataset == "synthetic":
        trained = ("This model was trained on synthetic data only, written by the bundle's own code (monai_srb.data) "
                   "and covered by the bundle's LICENSE (Apache-2.0): no third-party data licence applies.")
    else:
        trained = (f"This model was trained on the data set {dataset!r}. Its weights are derived from that data and "
                   "keep its licence; the terms of the data sets this bundle reads are:")
    rule = "-" * 72
    return f"Third Party Licenses\n{rule}\n\n{trained}\n\n{section}\n"


def _docs(bundle_readme: str, record: RunRecord, version: str) -> str:
    """The bundle's docs, with a section on the packaged model after its title."""
    lines = bundle_readme.splitlines(keepends=True)
    title = 1 if lines and lines[0].startswith("# ") else 0
    section = f"""
## This packaged model (version {version})

Packaged by `monai-srb package` from MLflow run `{record.mlflow_run_id}` (experiment `{record.experiment_name}`,
data: {record.dataset}). `models/model.pt` holds the weights of epoch {record.best_epoch}, the run's best validation
`{record.key_metric}`: {record.best} (last, epoch {record.last_epoch}: {record.last}), which is what
`configs/metadata.json` gives as `eval_metrics`. Its `{RUN_KEY}` entry records the run: seed {record.seed},
{record.num_threads} torch thread(s), and the command (run from a folder holding these `configs/`):

```bash
{record.command}
```

`configs/` hold the run's network overrides, so `configs/inference.json` builds the trained network on its own and
reads `models/model.pt` by default:

```bash
python -m monai.bundle run --config_file configs/inference.json --bundle_root . --input_dir <folder>
```

`large_files.yml` lists the model files with their sha256; `docs/data_license.txt` the licence of the data.
"""
    return "".join(lines[:title]) + section + "".join(lines[title:])


def _large_files(files: Mapping[str, str], base_url: str) -> str:
    """
    ``large_files.yml`` as the zoo's ``download_large_files`` (ci/utils.py) reads it: a ``large_files`` list of
    ``path``, ``url``, ``hash_val``, ``hash_type`` per file. JSON strings are YAML double-quoted scalars.
    """
    out = ["large_files:"]
    for path, sha in files.items():
        url = f"{base_url.rstrip('/')}/{path}" if base_url else ""
        out += [f"- path: {json.dumps(path)}", f"  url: {json.dumps(url)}", f"  hash_val: {json.dumps(sha)}",
                '  hash_type: "sha256"']
    return "\n".join(out) + "\n"


def _network_io(meta: dict[str, Any], network: torch.nn.Module, parser: ConfigParser) -> None:
    """
    Make ``network_data_format`` describe the packaged network: the channels of its first convolution and of its
    output; the size it was built for where the network takes one size alone (SRB_A) or the metadata gives one.
    A ``channel_def`` of channels that changed is dropped.
    """
    from monai_srb.export import bundle_input_shape

    io = meta.get("network_data_format", {})
    inputs = next(iter(io.get("inputs", {}).values()), None)
    outputs = next(iter(io.get("outputs", {}).values()), None)
    if not isinstance(inputs, dict) or not isinstance(outputs, dict):
        return
    shape = bundle_input_shape(parser)  # the channels of network_def's first convolution, the bundle's size
    was = list(inputs.get("spatial_shape", []))
    if holds_fixed_size_transform(network) or (was and all(isinstance(s, int) for s in was)):
        inputs["spatial_shape"] = shape[2:]
        if outputs.get("spatial_shape") == was:
            outputs["spatial_shape"] = shape[2:]
    param = next(network.parameters())
    with torch.no_grad():
        out_channels = int(network.eval()(torch.zeros(shape, device=param.device)).shape[1])
    for entry, channels in ((inputs, shape[1]), (outputs, out_channels)):
        if entry.get("num_channels") != channels:
            entry["num_channels"] = channels
            entry.pop("channel_def", None)


def _check_paths(run_dir: Path, bundle_root: Path, out_dir: Path, overwrite: bool, tracking_uri: str | None) -> None:
    """
    Check the folders :func:`package_run` reads and writes, before anything is read or written.

    Args:
        run_dir: the run's ``output_dir``.
        bundle_root: the bundle the run ran.
        out_dir: the packaged bundle's folder.
        overwrite: whether a non-empty ``out_dir`` may be replaced.
        tracking_uri: the run's store, when not ``<run_dir>/mlflow.db``.

    Raises:
        ValueError: naming the path: a run folder without its checkpoint, network overrides or store; a bundle folder
            without a file the package copies; an output folder that is a file, is not empty (without
            ``overwrite``), or holds the run or the bundle.
    """
    if not run_dir.is_dir():
        raise ValueError(f"argument --run_dir: {str(run_dir)!r} is not a folder (a bundle run's output_dir).")
    for path, what in ((run_dir / "models" / "model.pt", "its best checkpoint"),
                       (run_dir / "models" / NETWORK_CONFIG_FILE, "the network overrides it trained with")):
        if not path.is_file():
            raise ValueError(f"argument --run_dir: {str(run_dir)!r} holds no {path.relative_to(run_dir)} ({what}; "
                             f"looked for {path}): package the output_dir of a finished bundle training run.")
    if tracking_uri is None and not (run_dir / "mlflow.db").is_file():
        raise ValueError(f"argument --run_dir: {str(run_dir)!r} holds no MLflow store (looked for "
                         f"{run_dir / 'mlflow.db'}); a run tracked elsewhere: pass --tracking_uri.")
    for name in _BUNDLE_FILES:
        if not (bundle_root / name).is_file():
            raise ValueError(f"argument --bundle_root: {str(bundle_root)!r} has no {name} (monai-srb bundle-path "
                             "lists the bundles).")
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"argument --out_dir: {str(out_dir)!r} is a file, not a folder.")
    resolved = out_dir.resolve()
    for source, what in ((run_dir, "--run_dir"), (bundle_root, "--bundle_root")):
        if source.resolve() == resolved or resolved in source.resolve().parents:
            raise ValueError(f"argument --out_dir: {str(out_dir)!r} holds the {what} folder {str(source)!r}; package "
                             "into a folder of its own.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ValueError(f"argument --out_dir: {str(out_dir)!r} is not empty ({len(list(out_dir.iterdir()))} "
                         "entries); pass --overwrite to replace it, or another --out_dir.")


def _build_network(out: Path, meta: Mapping[str, Any]) -> tuple[ConfigParser, torch.nn.Module]:
    """
    The packaged ``inference.json``'s network with ``models/model.pt`` loaded (strictly: the overrides must fit),
    ``meta`` as its metadata.
    """
    from monai_srb.export import load_network_weights

    parser = ConfigParser()
    parser.read_config(str(out / "configs" / "inference.json"))
    parser.read_meta(json.loads(json.dumps(meta)))  # a copy: _network_io edits meta after
    parser.update({"bundle_root": str(out), "device": "cpu"})
    network = parser.get_parsed_content("network_def")
    try:
        load_network_weights(network, str(out / "models" / "model.pt"))
    except ValueError as e:
        raise ValueError(
            "the packaged configs/inference.json does not build the network the run trained (an override the run did "
            f"not store in {NETWORK_CONFIG_FILE}, e.g. a nested network_def#... one?): {e}"
        ) from e
    return parser, network


def _write_torchscript(network: torch.nn.Module, parser: ConfigParser, path: Path) -> str | None:
    """``models/model.ts`` (checked against eager PyTorch); ``None`` and a printed reason where it does not script."""
    from monai_srb.export import bundle_input_shape, export_torchscript

    try:
        export_torchscript(network, str(path), bundle_input_shape(parser))
    except Exception as e:  # torch.jit raises frontend, RuntimeError and NotSupportedError alike: the .pt stays
        path.unlink(missing_ok=True)
        print(f"models/model.ts not written, the network does not script: {type(e).__name__}: {str(e).splitlines()[0]}")
        return None
    return str(path)


def package_run(
    run_dir: str | os.PathLike,
    bundle_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    tracking_uri: str | None = None,
    run_id: str | None = None,
    metric: str | None = None,
    num_threads: int | None = None,
    command: str | None = None,
    version: str | None = None,
    base_url: str = "",
    torchscript: bool = True,
    overwrite: bool = False,
) -> Path:
    """
    Write the model-zoo bundle of a finished training run into ``out_dir`` (the layout in the module's docstring).
    It is written into a new folder beside ``out_dir`` and moved into place once complete, so a failure leaves
    ``out_dir`` as it was.

    Args:
        run_dir: the run's ``output_dir``: ``models/model.pt``, ``models/network_config.json``, ``mlflow.db``.
        bundle_root: the bundle the run ran (its ``configs/``, ``docs/README.md``, ``LICENSE``).
        out_dir: the packaged bundle's folder; missing or empty, or replaced with ``overwrite``.
        tracking_uri: the run's MLflow store; default ``sqlite:///<run_dir>/mlflow.db``.
        run_id: the MLflow run; default: the run that logged ``models/model.pt`` (:func:`find_training_run`).
        metric: the validation metric of ``eval_metrics``; default: the bundle's key metric.
        num_threads: the torch threads the training ran with; default: the run's ``num_threads`` param.
        command: the command that trained the run; default: rebuilt from its tracked values.
        version: the packaged bundle's version; default: the bundle's, its patch number plus one.
        base_url: where the model files will be downloadable, ``<base_url>/models/model.pt``, for ``large_files.yml``;
            empty: the urls are empty (the zoo's CI then needs the files in the folder).
        torchscript: also write ``models/model.ts`` where the network scripts.
        overwrite: replace a non-empty ``out_dir``.

    Returns:
        ``out_dir``.

    Raises:
        ValueError: naming the argument and its value: see :func:`_check_paths`, :func:`find_training_run`,
            :func:`read_run_record`; a ``version`` already in the changelog; configs that do not build the trained
            network.
    """
    run_dir, bundle_root, out = Path(run_dir), Path(bundle_root), Path(out_dir)
    _check_paths(run_dir, bundle_root, out, overwrite, tracking_uri)
    checkpoint = run_dir / "models" / "model.pt"
    uri = tracking_uri or f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"
    client = MlflowClient(uri)
    run = find_training_run(client, checkpoint, run_id)
    record = read_run_record(client, run, bundle_root / "configs" / "train.json", checkpoint, metric, num_threads,
                             command)
    meta = _read_json(bundle_root / "configs" / "metadata.json")
    new_version = version or _next_version(str(meta.get("version", "")))
    if new_version in meta.get("changelog", {}):
        raise ValueError(f"argument --version: {new_version!r} is in the bundle's changelog already; give a new one.")
    overrides = load_network_config(str(run_dir / "models"))
    readme = (bundle_root / "docs" / "README.md").read_text()
    licence = _data_licence(readme, record.dataset, bundle_root.name)

    out.parent.mkdir(parents=True, exist_ok=True)
    # beside out_dir, so the last step is a rename on one file system; made with mkdir, so the umask applies
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    if staging.exists():  # this name is this process's: a packaging of this process that was interrupted
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        (staging / "configs").mkdir()
        for path in sorted((bundle_root / "configs").iterdir()):
            if path.suffix == ".json" and path.name != "metadata.json":
                _write_json(staging / "configs" / path.name, apply_network_overrides(_read_json(path), overrides))
            elif path.is_file() and path.name != "metadata.json":
                shutil.copy2(path, staging / "configs" / path.name)
        (staging / "models").mkdir()
        shutil.copy2(checkpoint, staging / "models" / "model.pt")
        (staging / "docs").mkdir()
        shutil.copy2(bundle_root / "LICENSE", staging / "LICENSE")
        (staging / DATA_LICENCE).write_text(licence)
        (staging / "docs" / "README.md").write_text(_docs(readme, record, new_version))

        meta["version"] = new_version
        meta["changelog"] = {
            new_version: (f"the weights of MLflow run {record.mlflow_run_id} (epoch {record.best_epoch} of "
                          f"{record.epochs}, {record.dataset} data, seed {record.seed}, {record.num_threads} "
                          f"thread(s)), packaged by monai-srb package; eval_metrics: its best validation "
                          f"{record.key_metric}"),
            **meta.get("changelog", {}),
        }
        meta["eval_metrics"] = {record.key_metric: record.best}
        meta[RUN_KEY] = {"description": (
            "the training run whose validation figures eval_metrics holds: best and last epoch of key_metric (steps "
            "are epochs), the data, the checkpoint's sha256 (models/model.pt), the command, seed and torch threads "
            "that produced it"), **asdict(record)}
        parser, network = _build_network(staging, meta)
        _network_io(meta, network, parser)
        _write_json(staging / "configs" / "metadata.json", meta)

        models = {"models/model.pt": record.checkpoint_sha256}
        if torchscript and _write_torchscript(network, parser, staging / "models" / "model.ts"):
            models["models/model.ts"] = file_sha256(str(staging / "models" / "model.ts"))
        (staging / LARGE_FILES).write_text(_large_files(models, base_url))

        if out.exists():  # empty, or overwrite: the old folder goes only once the new one is complete
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    if not base_url:
        print(f"{out / LARGE_FILES}: the urls are empty; give --base_url where the model files will be downloadable "
              "before submitting to the model zoo, whose CI downloads files that are not in the folder.")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """
    ``monai-srb package``: write the model-zoo bundle of a finished training run (:func:`package_run`). A bad
    argument is a usage error (exit code 2) naming it; nothing is written then.

    Args:
        argv: the command-line arguments (``--help``); ``None``: ``sys.argv[1:]``.
    """
    ap = argparse.ArgumentParser(
        prog="monai-srb package",
        description="Package a finished bundle training run as a MONAI model-zoo bundle: configs with the run's "
        "network overrides, models/model.pt (+ model.ts), large_files.yml, docs/data_license.txt, and a "
        "metadata.json whose eval_metrics are the run's own validation figures.",
    )
    ap.add_argument("--run_dir", required=True,
                    help="the training run's output_dir (models/model.pt, models/network_config.json, mlflow.db)")
    ap.add_argument("--bundle_root", required=True,
                    help="the bundle the run ran, e.g. bundles/srb_skin_lesion_segmentation")
    ap.add_argument("--out_dir", required=True, help="the packaged bundle's folder; must be missing or empty")
    ap.add_argument("--overwrite", action="store_true", help="replace a non-empty --out_dir")
    ap.add_argument("--num_threads", type=int, default=None,
                    help="the torch threads the training ran with (OMP_NUM_THREADS, else the physical cores); needed "
                    "unless the run records a num_threads param")
    ap.add_argument("--tracking_uri", default=None, help="the run's MLflow store; default: sqlite:///<run_dir>/mlflow.db")
    ap.add_argument("--run_id", default=None,
                    help="the MLflow run; default: the finished run that logged <run_dir>/models/model.pt")
    ap.add_argument("--metric", default=None, help="the validation metric of eval_metrics; default: the key metric")
    ap.add_argument("--command", default=None,
                    help="the command that trained the run, as typed; default: rebuilt from its tracked values")
    ap.add_argument("--version", default=None, help="the packaged bundle's version; default: the bundle's patch + 1")
    ap.add_argument("--base_url", default="",
                    help="where the model files will be downloadable, for the urls of large_files.yml "
                    "(<base_url>/models/model.pt); default: empty urls")
    ap.add_argument("--no_torchscript", action="store_true", help="do not write models/model.ts")
    args = ap.parse_args(argv)
    try:
        out = package_run(
            args.run_dir, args.bundle_root, args.out_dir, tracking_uri=args.tracking_uri, run_id=args.run_id,
            metric=args.metric, num_threads=args.num_threads, command=args.command, version=args.version,
            base_url=args.base_url, torchscript=not args.no_torchscript, overwrite=args.overwrite,
        )
    except ValueError as e:
        ap.error(str(e))
    print(f"packaged {args.run_dir} as {out}:")
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        print(f"  {path.relative_to(out)}")
