"""A wheel built from the repository carries the bundles, py.typed and the ``monai-srb`` entry point."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What a clone holds that the build reads; run outputs (bundles/*/runs) and caches are left behind.
SOURCES = ["pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "monai_srb", "bundles"]
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "runs", "*.egg-info")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    src, dist = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=IGNORE)
        elif path.is_file():
            shutil.copy2(path, src / name)
    # no build isolation: the venv's setuptools builds it, so the test needs no network
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(src)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = dist.glob("monai_srb-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_carries_every_bundle_file(wheel):
    names = set(wheel.namelist())
    expected = {
        f"monai_srb/{p.relative_to(REPO).as_posix()}"
        for bundle in sorted((REPO / "bundles").glob("srb_*"))
        for p in [bundle / "LICENSE", *(bundle / "configs").iterdir(), *(bundle / "docs").iterdir()]
        if p.is_file()
    }
    assert len(expected) >= 3 * 9  # LICENSE, README.md, 7 config files each
    assert sorted(expected - names) == []
    assert not any("/runs/" in n for n in names)


def test_wheel_carries_py_typed_and_the_console_script(wheel):
    names = wheel.namelist()
    assert "monai_srb/py.typed" in names and "monai_srb/cli.py" in names
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert "[console_scripts]" in text and "monai-srb = monai_srb.cli:main" in text
