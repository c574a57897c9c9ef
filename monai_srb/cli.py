"""
The ``monai-srb`` command: export a trained bundle, package a run for the model zoo, count the blocks' parameters
and FLOPs, find the bundles.

    B=$(monai-srb bundle-path srb_skin_lesion_segmentation)
    monai-srb export --bundle_root "$B" --ckpt_file runs/models/model.pt
    monai-srb package --run_dir runs --bundle_root "$B" --out_dir zoo/srb_skin_lesion_segmentation --num_threads 2
    monai-srb complexity --channels 256 --size 64
    monai-srb bundle-path srb_3d_segmentation          # one bundle's folder; without a name: every bundle
    monai-srb --version

``export``, ``package`` and ``complexity`` take the options of :func:`monai_srb.export.main`,
:func:`monai_srb.bundle.zoo.main` and :func:`monai_srb.complexity.main` (``monai-srb export --help``). The
bundles are found by :func:`bundle_path`: in an installed wheel they are package data
(``monai_srb/bundles/<name>``, copied there by the build, see ``setup.py``); in a source checkout or an editable
install they are the checkout's ``bundles/`` folder.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BUNDLE_PREFIX", "bundle_names", "bundle_path", "bundle_roots", "main"]

BUNDLE_PREFIX = "srb_"
_PACKAGE_DIR = Path(__file__).resolve().parent


def bundle_roots() -> list[Path]:
    """
    The folders searched for bundles, in order: the wheel's package data (``<site-packages>/monai_srb/bundles``),
    then the source checkout's ``bundles/`` beside the package (editable installs and a plain clone).
    Only the folders that exist are returned.
    """
    candidates = [_PACKAGE_DIR / "bundles", _PACKAGE_DIR.parent / "bundles"]
    return [c for c in candidates if c.is_dir()]


def _is_bundle(folder: Path) -> bool:
    return folder.name.startswith(BUNDLE_PREFIX) and (folder / "configs" / "metadata.json").is_file()


def bundle_names() -> list[str]:
    """The names of the bundles found by :func:`bundle_roots` (the first root holding a name wins), sorted."""
    return sorted({b.name for root in bundle_roots() for b in root.iterdir() if _is_bundle(b)})


def bundle_path(name: str) -> Path:
    """
    The folder of bundle ``name`` (the ``--bundle_root`` of ``python -m monai.bundle run``).

    Args:
        name: a bundle name, e.g. ``"srb_skin_lesion_segmentation"``.

    Returns:
        the absolute path of the bundle folder (it holds ``configs/``, ``docs/`` and ``LICENSE``).

    Raises:
        ValueError: when no searched folder holds a bundle ``name``, naming it, the bundles found and the
            folders searched.
    """
    if name in bundle_names():  # a plain name: not a path that leads out of the bundle folders
        return next(root / name for root in bundle_roots() if _is_bundle(root / name))
    searched = ", ".join(str(r) for r in bundle_roots()) or f"none ({_PACKAGE_DIR / 'bundles'} does not exist)"
    raise ValueError(
        f"unknown bundle {name!r}: the bundles are {bundle_names()}; looked in {searched}."
    )


def _version() -> str:
    """The installed distribution's version (``pip show monai_srb``), or why there is none."""
    try:
        return importlib.metadata.version("monai_srb")
    except importlib.metadata.PackageNotFoundError:  # imported from a checkout that was never pip-installed
        return "unknown (monai_srb is not installed: pip install -e .)"


def _bundle_path_command(name: str | None) -> None:
    if name is not None:
        print(bundle_path(name))
        return
    for found in bundle_names():
        print(f"{found}\t{bundle_path(found)}")


def main(argv: Sequence[str] | None = None) -> None:
    """
    Run ``monai-srb <command> [options]``: ``export``, ``package``, ``complexity`` or ``bundle-path [name]``;
    ``monai-srb --version`` prints the installed version.

    Args:
        argv: the arguments after the program name; ``None``: ``sys.argv[1:]``.
    """
    parser = argparse.ArgumentParser(
        prog="monai-srb", description="Spectral Residual Blocks for MONAI: bundle tools."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="{export,package,complexity,bundle-path}"
    )
    # export, package and complexity parse their own options (and --help): everything after the command goes to them
    commands.add_parser(
        "export", add_help=False, help="export a bundle's trained network to TorchScript and ONNX (--help for options)"
    )
    commands.add_parser(
        "package", add_help=False,
        help="write a finished training run as a model-zoo bundle folder (--help for options)",
    )
    commands.add_parser(
        "complexity", add_help=False, help="parameters and inference FLOPs of the blocks (--help for options)"
    )
    path = commands.add_parser("bundle-path", help="print a bundle's folder; without a name, list every bundle")
    path.add_argument("name", nargs="?", default=None, help="e.g. srb_skin_lesion_segmentation")
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))

    if args.command == "export":
        from monai_srb.export import main as export_main

        export_main(rest)
    elif args.command == "package":
        from monai_srb.bundle.zoo import main as package_main

        package_main(rest)
    elif args.command == "complexity":
        from monai_srb.complexity import main as complexity_main

        complexity_main(rest)
    else:
        if rest:
            parser.error(f"bundle-path takes one bundle name, got the extra arguments {rest}.")
        try:
            _bundle_path_command(args.name)
        except ValueError as e:
            parser.error(str(e))


if __name__ == "__main__":
    main()
