"""
Build hook: a wheel carries the three bundles as package data, ``monai_srb/bundles/<name>/{configs,docs,LICENSE}``.

The bundles live at the repository root (``bundles/``), where ``python -m monai.bundle run --bundle_root
bundles/<name>`` and the model zoo expect them, so ``package-data`` (which only reaches inside the package)
cannot list them. Everything else is declared in ``pyproject.toml``. An editable install copies nothing:
:func:`monai_srb.cli.bundle_path` finds the checkout's ``bundles/`` instead. Run outputs (``runs/``) are
never copied.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLES = Path(__file__).resolve().parent / "bundles"
BUNDLE_PARTS = ("configs", "docs", "LICENSE")


class build_py_with_bundles(build_py):
    """``build_py`` that also copies each ``bundles/srb_*`` (configs, docs, LICENSE) into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "monai_srb" / "bundles"
        shutil.rmtree(target, ignore_errors=True)  # no stale files from an earlier build
        for bundle in sorted(BUNDLES.glob("srb_*")):
            for part in BUNDLE_PARTS:
                source = bundle / part
                if source.is_dir():
                    shutil.copytree(source, target / bundle.name / part, ignore=shutil.ignore_patterns("__pycache__"))
                elif source.is_file():
                    (target / bundle.name).mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, target / bundle.name / part)


setup(cmdclass={"build_py": build_py_with_bundles})
