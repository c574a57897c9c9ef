"""
A griffe extension for the API docs: the docstrings' Sphinx roles (``:class:`~monai_srb.x.Y```, ``:func:`name```)
become mkdocstrings cross-references, so ``mkdocs build --strict`` fails on a reference to something that does
not exist (mkdocstrings reads Google-style sections but leaves Sphinx roles as plain text).

A reference into monai_srb, qualified or resolved from the docstring's scope, must name something that exists,
or the build logs a warning (which ``--strict`` turns into a failure). It becomes a link when the API pages
render its target (a class or function a package exports, a public member of a page's module, a method defined
on such a class), and code otherwise (modules, constants, inherited methods). References to other libraries
(MONAI, torch, Ignite, MLflow) are rendered as code: the build has no network for their inventories.
"""

from __future__ import annotations

import logging
import re

import griffe

ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj):`(~?)([\w.]+)(?:\(\))?`")
LOG = logging.getLogger("mkdocs.plugins.griffe_roles")


def _resolve(obj: griffe.Object, name: str) -> str | None:
    """The path of ``name`` as seen from ``obj``'s scope (its members, then its parents'), else ``None``."""
    head, _, rest = name.partition(".")
    scope: griffe.Object | None = obj
    while scope is not None:
        if head in scope.members:
            member = scope.members[head]
            # an import names its target (``sys`` -> ``sys``), a definition its own path
            path = member.target_path if member.is_alias else member.path
            return path + (f".{rest}" if rest else "")
        scope = scope.parent
    return None


# the modules docs/api/*.md render whole (every public member), beside the packages rendered by their __all__
PAGE_MODULES = {
    "monai_srb.bundle.overrides", "monai_srb.bundle.run_dir", "monai_srb.bundle.data", "monai_srb.bundle.distributed",
    "monai_srb.bundle.training", "monai_srb.bundle.results", "monai_srb.export", "monai_srb.complexity",
    "monai_srb.cli",
}


def _lookup(pkg: griffe.Module, path: str) -> griffe.Object | None:
    """The object at ``path`` in ``pkg`` (aliases followed), ``None`` when there is none."""
    try:
        obj = pkg if path == pkg.path else pkg[path.removeprefix(f"{pkg.path}.")]
        return obj.final_target if obj.is_alias else obj
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _rendered(pkg: griffe.Module, obj: griffe.Object) -> bool:
    """Whether a page renders ``obj``, so that a link to it resolves."""
    if obj.name.startswith("_") or not (obj.is_class or obj.is_function):
        return False
    parent = obj.parent
    if parent is not None and parent.is_class:
        return _rendered(pkg, parent)
    if parent is not None and parent.path in PAGE_MODULES:
        return True
    exported = (m for m in pkg.modules.values() if m.is_package or m.path == pkg.path)
    return any(obj.name in (m.exports or ()) and m.members.get(obj.name) is not None for m in [pkg, *exported])


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of the loaded package into autorefs links (or code)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: object) -> None:
        self.pkg = pkg
        self._visit(pkg)

    def _visit(self, obj: griffe.Object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(lambda m: self._link(obj, m), obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self._visit(member)

    def _link(self, obj: griffe.Object, match: re.Match) -> str:
        short, target = match.group(1) == "~", match.group(2)
        shown = target.rsplit(".", 1)[-1] if short else target
        if not target.startswith(f"{self.pkg.path}"):
            path = _resolve(obj, target)
            if path is None or not path.startswith(self.pkg.path):
                if "." not in target:
                    LOG.warning("%s: the reference %r resolves to nothing", obj.path, target)
                return f"`{shown}`"
            target = path
        found = _lookup(self.pkg, target)
        if found is None:
            LOG.warning("%s: the reference %r names nothing in %s", obj.path, target, self.pkg.path)
            return f"`{shown}`"
        return f"[`{shown}`][{found.path}]" if _rendered(self.pkg, found) else f"`{shown}`"
