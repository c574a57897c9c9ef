"""The documented workflow commands: ``python -m workflows.<module>`` of a module that runs as a program."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "bundles").glob("*/docs/*.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_docs_run_workflows_as_modules_of_the_package(doc):
    text = doc.read_text()
    assert re.findall(r"python3? workflows/\S*", text) == []  # the scripts' old spelling
    for name in sorted(set(re.findall(r"python -m workflows\.(\w+)", text))):
        module = importlib.import_module(f"workflows.{name}")
        source = Path(module.__file__).read_text()
        assert callable(getattr(module, "main", None)) and 'if __name__ == "__main__":' in source, name


def test_workflows_modules_import_each_other_by_package():
    for path in sorted((ROOT / "workflows").glob("*.py")):
        source = path.read_text()
        assert "sys.path" not in source and "spec_from_file_location" not in source, path.name
