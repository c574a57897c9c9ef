"""Load a script of ``workflows/`` (not a package yet) as a module, for the tests of this folder."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_workflow(name: str) -> ModuleType:
    """``workflows/<name>.py`` as the module ``srb_<name>``."""
    spec = importlib.util.spec_from_file_location(f"srb_{name}", ROOT / "workflows" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module
