"""The ``monai-srb`` console command: export, package, complexity and the bundle-path lookup."""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

import monai_srb.cli as cli
from monai_srb.blocks.factory import block_names

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
NAMES = ["srb_3d_segmentation", "srb_chest_xray_classification", "srb_skin_lesion_segmentation"]


def test_the_entry_point_is_declared():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"monai-srb": "monai_srb.cli:main"}


@pytest.mark.parametrize("name", NAMES)
def test_bundle_path_finds_each_bundle_of_the_checkout(name, capsys):
    assert cli.bundle_path(name) == REPO / "bundles" / name
    cli.main(["bundle-path", name])
    assert capsys.readouterr().out == f"{REPO / 'bundles' / name}\n"


def test_bundle_path_without_a_name_lists_every_bundle(capsys):
    cli.main(["bundle-path"])
    assert capsys.readouterr().out.splitlines() == [f"{n}\t{REPO / 'bundles' / n}" for n in NAMES]


def test_an_installed_wheels_bundles_come_first(tmp_path, monkeypatch):
    # a wheel's layout: <site-packages>/monai_srb/bundles/<name>/configs/metadata.json
    installed = tmp_path / "monai_srb" / "bundles" / "srb_skin_lesion_segmentation"
    (installed / "configs").mkdir(parents=True)
    (installed / "configs" / "metadata.json").write_text("{}")
    monkeypatch.setattr(cli, "_PACKAGE_DIR", tmp_path / "monai_srb")
    assert cli.bundle_roots() == [tmp_path / "monai_srb" / "bundles"]
    assert cli.bundle_path("srb_skin_lesion_segmentation") == installed
    assert cli.bundle_names() == ["srb_skin_lesion_segmentation"]


@pytest.mark.parametrize("name", ["srb_unknown", "configs", "../bundles/srb_3d_segmentation"])
def test_an_unknown_bundle_is_named_with_the_ones_there_are(name, capsys):
    message = rf"unknown bundle {re.escape(repr(name))}: the bundles are \[.*'srb_3d_segmentation'"
    with pytest.raises(ValueError, match=message):
        cli.bundle_path(name)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bundle-path", name])
    assert exit_.value.code == 2 and f"unknown bundle {name!r}" in capsys.readouterr().err


def test_complexity_command_prints_the_cost_of_each_block(capsys):
    cli.main(["complexity", "--channels", "16", "--size", "8", "--format", "csv"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Block,GFLOPs,GMACs,")
    assert [line.split(",")[0] for line in lines[1:]] == block_names()


@pytest.mark.parametrize("command", ["export", "package", "complexity"])
def test_each_command_takes_its_own_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith(f"usage: monai-srb {command}")


def test_package_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        cli.main(["package", "--help"])
    out = capsys.readouterr().out
    options = ["--run_dir", "--bundle_root", "--out_dir", "--overwrite", "--num_threads", "--tracking_uri", "--run_id",
               "--metric", "--command", "--version", "--base_url", "--no_torchscript"]
    assert [o for o in options if f"  {o}" not in out] == []
    assert "eval_metrics are the run's own validation figures" in " ".join(out.split())


@pytest.mark.parametrize(
    "args,message",
    [
        ([], "the following arguments are required: --run_dir, --bundle_root, --out_dir"),
        (["--run_dir", "{tmp}/none"], "argument --run_dir: '{tmp}/none' is not a folder"),
        (["--run_dir", "{tmp}"], "argument --run_dir: '{tmp}' holds no models/model.pt (its best checkpoint; "
                                 "looked for {tmp}/models/model.pt)"),
    ],
)
def test_package_names_a_bad_argument_and_writes_nothing(args, message, tmp_path, capsys):
    given = [a.format(tmp=tmp_path) for a in args]
    if given:
        given += ["--bundle_root", str(REPO / "bundles" / NAMES[2]), "--out_dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_:
        cli.main(["package", *given])
    assert exit_.value.code == 2 and message.format(tmp=tmp_path) in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "out").exists()


def test_version_prints_the_installed_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    version = importlib.metadata.version("monai_srb")
    assert exit_.value.code == 0 and capsys.readouterr().out == f"monai-srb {version}\n"
    assert version == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def test_no_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([])
    assert exit_.value.code == 2 and "export,package,complexity,bundle-path" in capsys.readouterr().err


DOCS = [REPO / "README.md", REPO / "docs" / "results.md", *sorted((REPO / "bundles").glob("srb_*/docs/README.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(REPO)) for d in DOCS])
def test_docs_spell_the_console_command(doc):
    assert re.findall(r"python -m monai_srb\.\w+", doc.read_text()) == []
