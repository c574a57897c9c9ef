"""
Run one of the paper's experiment grids through a bundle, log every run to MLflow, and report it.

A grid (``workflows/grids/*.json``) names a bundle, its variants (name -> bundle overrides) and its
presets (which variants, seeds and folds, with which training budget). This command trains every
(variant, seed, fold) of a preset with :class:`monai.bundle.ConfigWorkflow`, all into one
MLflow store, tags each run with ``srb.variant`` / ``srb.seed`` / ``srb.fold``, then reads the
runs back from MLflow into a markdown table (mean +- std over seeds) and PNG figures.

    python -m workflows.run_experiments --grid workflows/grids/isic_table1.json --preset cpu \
        --out runs/experiments/isic_cpu
    python -m workflows.run_experiments --grid ... --preset cpu --out ... --report-only
    python -m workflows.run_experiments --grid ... --preset cpu_grid --out ... --cpus 2 --threads 1
    python -m workflows.run_experiments --grid ... --preset full --out ... --address auto \
        --tracking_uri http://host:5000

Each job is a Ray task of ``--threads`` CPUs (and a GPU when its device is CUDA): Ray starts in this process
(``--cpus``: how many cores it uses), or ``--address`` sends the jobs to an existing cluster, which needs the
repository and its data at the same paths on every node. Jobs start longest first (by their network's
parameter count), so that the long ones do not finish alone at the end. A job that raises is recorded FAILED,
with its traceback, and the others go on; a rerun skips the FINISHED ones. Without Ray the jobs run one after
another in this process. Every job logs to one MLflow store: ``<out>/mlflow.db``, served by an ``mlflow
server`` on loopback for the duration of the grid, or the ``--tracking_uri`` server that all nodes reach.

The table: each seed's mean over its folds, then mean +- std over seeds, at the last epoch and at the best
epoch; the paired difference to the baseline counts as inside the noise unless its mean is at least twice
its standard error over seeds (details: :mod:`workflows.results`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workflows.grid import load_grid, plan, tracking_uri
from workflows.records import export_records, import_records
from workflows.results import merge_uris, report
from workflows.runner import run_grid


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs; the value is JSON when it parses (``null``, ``64``, ``["before_up4"]``), else a str."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set takes key=value, got {item!r}.")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv: Sequence[str] | None = None) -> str:
    """
    Train the preset's jobs that are not FINISHED yet (unless ``--report-only``), then report; returns the report.

    Args:
        argv: the command-line arguments (``--help``); ``None``: ``sys.argv[1:]``.

    Raises:
        SystemExit: 2 on a usage error (a grid file that fails :func:`workflows.grid.load_grid`'s checks, a
            ``--preset`` or ``--variants`` the grid lacks, ...); with a message listing them when any job FAILED.
    """
    parser = argparse.ArgumentParser(prog="python -m workflows.run_experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", required=True, help="a grid file, e.g. workflows/grids/isic_table1.json")
    parser.add_argument("--preset", required=True, help="one of the grid's presets (smoke, cpu, ..., full)")
    parser.add_argument("--out", required=True, help="folder of the MLflow store, the runs, the table and figures")
    parser.add_argument("--variants", nargs="+", help="only these variants (default: the preset's)")
    parser.add_argument("--seeds", nargs="+", type=int, help="only these seeds (default: the preset's)")
    parser.add_argument("--folds", nargs="+", type=int, help="only these folds (default: the preset's)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="extra bundle overrides (JSON values)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPUs (torch threads) per job (default: 1 under Ray; torch's default without Ray)")
    parser.add_argument("--cpus", type=int, default=None, help="CPUs of the Ray started in this process (default: all)")
    parser.add_argument("--address", default=None,
                        help="an existing Ray cluster: auto, ray://host:10001 or host:port (default: start Ray here)")
    parser.add_argument("--tracking_uri", default=None,
                        help="an MLflow server every job reaches, http://host:port (default: serve <out>/mlflow.db "
                        "on loopback while the grid runs)")
    parser.add_argument("--report-only", action="store_true", help="only read the existing runs back and report")
    parser.add_argument("--records", default=None, metavar="DIR",
                        help="a folder of committed run records (workflows/records.py): its runs are imported into the "
                        "store first (so they count as done), and every FINISHED run of the store is exported to it as "
                        "each job finishes and at the end")
    parser.add_argument("--merge", nargs="+", default=[], metavar="PATH",
                        help="more stores whose runs join the report and count as done: --out folders (also those of "
                        "earlier versions, with workers/<k>/mlflow.db), SQLite files or tracking URIs")
    args = parser.parse_args(argv)
    for name in ("threads", "cpus"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.cpus is not None and args.address is not None:
        parser.error(f"--cpus sizes the Ray started here; the cluster at --address {args.address} has its own CPUs")

    try:
        grid = load_grid(args.grid)
    except ValueError as e:  # a bad grid file is a usage error: its message, not a traceback
        parser.error(str(e))
    if args.preset not in grid["presets"]:
        parser.error(f"--preset must be one of the presets {list(grid['presets'])} of {args.grid}, got {args.preset!r}")
    unknown = [v for v in args.variants or [] if v not in grid["variants"]]
    if unknown:
        parser.error(f"--variants {unknown} are not variants of {args.grid}; its variants are {list(grid['variants'])}")
    out = Path(args.out)
    merge = [u for m in args.merge for u in merge_uris(m)]
    store = args.tracking_uri or tracking_uri(out)
    export = None
    if args.records is not None:
        if Path(args.records).exists() and not Path(args.records).is_dir():
            parser.error(f"--records must be a folder, got the file {args.records!r}")
        if Path(args.records).is_dir():
            out.mkdir(parents=True, exist_ok=True)
            imported = import_records(args.records, store, grid, args.preset)
            if imported:
                print(f"{len(imported)} runs imported from the records in {args.records}", flush=True)

        def export(uri: str) -> None:
            export_records(uri, grid, args.preset, args.records)

    results: list[dict[str, Any]] = []
    if not args.report_only:
        jobs = plan(grid, args.preset, args.variants, args.seeds, args.folds, _parse_set(args.set))
        results = run_grid(grid, args.preset, jobs, out, uri=args.tracking_uri, merge=merge, address=args.address,
                           cpus=args.cpus, threads=args.threads, on_done=export)
    if export is not None:
        export(store)
    text = report(grid, args.preset, out, merge=merge, variants=args.variants, seeds=args.seeds, folds=args.folds,
                  uri=args.tracking_uri)
    print(text)
    failed = [r for r in results if r["status"] == "FAILED"]
    if failed:
        raise SystemExit(
            f"{len(failed)} of {len(results)} jobs FAILED (tracebacks above and in MLflow's srb.error tags): "
            + "; ".join(f"{r['variant']} seed {r['seed']} fold {r['fold']}: {r['error']}" for r in failed)
        )
    return text


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
