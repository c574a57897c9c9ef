"""
The API docs' griffe extension (docs/griffe_roles.py): Sphinx roles in docstrings become links that resolve, and a
reference to nothing is a warning, which ``mkdocs build --strict`` (run by .ci/run) turns into a failure.
"""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

griffe = pytest.importorskip("griffe")

ROOT = Path(__file__).resolve().parents[1]
TOY = '''
"""A toy package."""
import sys

__all__ = ["Good", "make"]
LIMIT = 3


class Good:
    """A class."""

    def run(self):
        """Run it."""


def make():
    """{doc}"""
'''
# (docstring of make, what it must become, a warning expected)
CASES = [
    (":class:`Good`", "[`Good`][toypkg.Good]", False),
    (":class:`~toypkg.Good`", "[`Good`][toypkg.Good]", False),
    (":meth:`Good.run`", "[`Good.run`][toypkg.Good.run]", False),
    (":data:`LIMIT`", "`LIMIT`", False),  # a constant: no page renders it, so code, not a link
    (":func:`sys.exit`", "`sys.exit`", False),  # another library: code
    (":class:`monai.networks.nets.BasicUNet`", "`monai.networks.nets.BasicUNet`", False),
    (":func:`toypkg.missing`", "`toypkg.missing`", True),
    (":class:`Missing`", "`Missing`", True),
]


@pytest.mark.parametrize("doc,expected,warns", CASES, ids=[c[0] for c in CASES])
def test_sphinx_roles_become_checked_references(tmp_path, caplog, doc, expected, warns):
    (tmp_path / "toypkg").mkdir()
    (tmp_path / "toypkg" / "__init__.py").write_text(textwrap.dedent(TOY).replace("{doc}", doc))
    extensions = griffe.load_extensions(f"{ROOT / 'docs' / 'griffe_roles.py'}:SphinxRoles")
    with caplog.at_level(logging.WARNING, logger="mkdocs.plugins.griffe_roles"):
        pkg = griffe.load("toypkg", search_paths=[str(tmp_path)], extensions=extensions)
    assert pkg["make"].docstring.value == expected
    warnings = [r.getMessage() for r in caplog.records if r.name == "mkdocs.plugins.griffe_roles"]
    assert bool(warnings) == warns, warnings
    if warns:
        assert doc.split("`")[1].lstrip("~") in warnings[0]  # the message names the reference
