"""
The package as users and bundles see it: a wheel built from the repository carries the bundles, py.typed and
the ``monai-srb`` entry point; each package's ``__all__`` lists what it exports; ``import monai_srb`` makes
every public class and function a short ``_target_`` name.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

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


@pytest.mark.slow
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


@pytest.mark.slow
def test_wheel_carries_py_typed_and_the_console_script(wheel):
    names = wheel.namelist()
    assert "monai_srb/py.typed" in names and "monai_srb/cli.py" in names
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert "[console_scripts]" in text and "monai-srb = monai_srb.cli:main" in text


def _packages() -> list[ModuleType]:
    import monai_srb

    names = [name for _, name, is_package in pkgutil.walk_packages(monai_srb.__path__, "monai_srb.") if is_package]
    return [monai_srb, *(importlib.import_module(name) for name in names)]


@pytest.mark.parametrize("package", _packages(), ids=lambda p: p.__name__)
def test_package_all_lists_exactly_what_it_exports(package):
    # Public names bound in the package namespace, less its submodules (reached as attributes anyway) and the
    # ``annotations`` feature that ``from __future__ import annotations`` binds.
    exported = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert len(set(package.__all__)) == len(package.__all__), "duplicate names in __all__"
    assert sorted(package.__all__) == sorted(exported)
    assert all(hasattr(package, name) for name in package.__all__)


def test_top_level_exports_only_what_users_call():
    import monai_srb

    users_call = {"SpectralResidualBlock", "FourierTransform", "AdaptiveOrthogonalTransform", "CosineTransform",
                  "SRBUNet", "SRBSPMNet", "SRBResNet50", "SRBDenseNet121", "insert_blocks", "retract_orthogonal_"}
    assert sorted(monai_srb.__all__) == sorted(users_call)


# Run in a fresh interpreter that imports only monai_srb, as a bundle's "imports": ["$import monai_srb"] does.
# The command-line tools (cli, complexity, export) are imported on use; private modules hold no targets; a deprecated
# alias of a moved module (its import warns DeprecationWarning naming it) defines nothing and must not be imported.
_SHORT_NAMES = """
import importlib, inspect, pkgutil, sys, warnings
import monai_srb
from monai.bundle.config_item import ComponentLocator

loaded, locator = set(sys.modules), ComponentLocator()
tools = ("monai_srb.cli", "monai_srb.complexity", "monai_srb.export")
for _, name, _ in pkgutil.walk_packages(monai_srb.__path__, "monai_srb."):
    if name in tools or name.rsplit(".", 1)[1].startswith("_"):
        continue
    if name not in loaded:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            importlib.import_module(name)
        if any(issubclass(w.category, DeprecationWarning) and name in str(w.message) for w in caught):
            continue
        print(f"{name}: not imported by import monai_srb")
    module = importlib.import_module(name)
    for attr in getattr(module, "__all__", ()):
        obj = getattr(module, attr)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            found = locator.get_component_module_name(attr)
            if found != obj.__module__:
                print(f"{name}.{attr}: short name resolves to {found}, expected {obj.__module__}")
"""


def test_import_monai_srb_makes_every_public_name_a_short_target():
    # MONAI's ComponentLocator finds a short _target_ name only in a module already imported, and only when
    # exactly one loaded module defines it.
    result = subprocess.run([sys.executable, "-c", _SHORT_NAMES], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == ""
