"""
The bundle package as the rest of the code sees it: the core (transforms, blocks, networks, metrics, data) never
imports it; ``monai_srb.bundle_config`` and ``monai_srb.bundle_helpers``, kept one release for bundles of one's own,
warn on import, naming the new package, and give the very objects :mod:`monai_srb.bundle` holds; neither the package
nor the shipped bundles import them.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import monai_srb.bundle
import monai_srb.metrics

ROOT = Path(__file__).resolve().parents[2]
# the subpackages the bundles are built from, which must work without them
CORE = ["spectral", "blocks", "nets", "metrics", "data"]


def _imported(path: Path) -> set[str]:
    """The modules a source file imports (``from x import y``: ``x`` and ``x.y``, as ``y`` may be a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.update([node.module, *(f"{node.module}.{alias.name}" for alias in node.names)])
    return names


@pytest.mark.parametrize("package", CORE)
def test_the_core_never_imports_the_bundle_package(package):
    found = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "monai_srb" / package).rglob("*.py")
        for name in _imported(path)
        if name == "monai_srb.bundle" or name.startswith(("monai_srb.bundle.", "monai_srb.bundle_"))
    }
    assert found == set()


# (old module, every name it exported before the move, where each one lives now)
ALIASES = [
    (
        "monai_srb.bundle_config",
        ["EVALUATE_SPLITS", "NETWORK_CONFIG_FILE", "OutputDirLock", "as_bool", "as_bools", "check_choice",
         "check_evaluate_split", "check_fold", "check_number", "check_path", "check_size", "evaluation_datalist",
         "load_network_config", "save_network_config"],
        {},
    ),
    (
        "monai_srb.bundle_helpers",
        ["CLASSIFICATION_TASKS", "classification_loss", "compiled_network", "distributed_device",
         "finalize_distributed", "inference_image_dir", "init_distributed", "label_prediction_columns",
         "log_evaluation", "resolve_data_root", "stop_on_nan_loss", "train_val_split"],
        {"CLASSIFICATION_TASKS": monai_srb.metrics},  # defined once, with the metrics that score the tasks
    ),
]


@pytest.mark.parametrize("old,names,elsewhere", ALIASES, ids=[old for old, _, _ in ALIASES])
def test_the_old_module_warns_and_gives_the_same_objects(old, names, elsewhere, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)  # a module imported before warns no more
    with pytest.warns(DeprecationWarning, match=rf"{re.escape(old)} is deprecated .* import monai_srb\.bundle "):
        module = importlib.import_module(old)
    assert sorted(module.__all__) == sorted(names)
    for name in names:
        assert getattr(module, name) is getattr(elsewhere.get(name, monai_srb.bundle), name), name


def test_neither_the_package_nor_its_tools_import_the_old_modules():
    code = "import sys, monai_srb, monai_srb.export, monai_srb.complexity, monai_srb.cli; print(sorted(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "monai_srb.bundle_config" not in done.stdout and "monai_srb.bundle_helpers" not in done.stdout


CONFIGS = sorted(p for p in ROOT.glob("bundles/*/configs/*.json") if p.name != "metadata.json")


@pytest.mark.parametrize("path", CONFIGS, ids=[f"{p.parents[1].name}/{p.name}" for p in CONFIGS])
def test_no_shipped_config_names_the_old_modules(path):
    # metadata.json is left out: its changelog records what the configs called then
    text = path.read_text()
    assert "monai_srb.bundle_config" not in text and "monai_srb.bundle_helpers" not in text
