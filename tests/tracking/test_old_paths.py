"""The names that moved from monai_srb.handlers to monai_srb.tracking: for one release they still work, and warn."""

from __future__ import annotations

import importlib
import sys

import pytest

import monai_srb.handlers
import monai_srb.tracking
from monai_srb.tracking.run_params import config_params

# (old name in monai_srb.handlers, the object it gives)
NAMES = [
    ("SRBMLFlowHandler", monai_srb.tracking.SRBMLFlowHandler),
    ("CHECKPOINT_SHA256_TAG", monai_srb.tracking.CHECKPOINT_SHA256_TAG),
    ("PROCESS_RUN_NAME", monai_srb.tracking.PROCESS_RUN_NAME),
    ("RUN_ID_STATE_KEY", monai_srb.tracking.RUN_ID_STATE_KEY),
    ("check_tracking_server", monai_srb.tracking.check_tracking_server),
    ("config_overrides", monai_srb.tracking.config_overrides),
    ("config_params", config_params),
    ("default_tracking_uri", monai_srb.tracking.default_tracking_uri),
    ("describe_network", monai_srb.tracking.describe_network),
    ("skip_monai_tracking", monai_srb.tracking.disable_monai_mlflow_handlers),
    ("tracking_enabled", monai_srb.tracking.tracking_enabled),
]


@pytest.mark.parametrize("name,moved", NAMES, ids=[n for n, _ in NAMES])
def test_old_handlers_names_warn_and_give_the_moved_objects(name, moved):
    with pytest.warns(DeprecationWarning, match=rf"monai_srb\.handlers\.{name} is deprecated"):
        assert getattr(monai_srb.handlers, name) is moved


def test_old_names_are_not_listed():
    # star imports and MONAI's ComponentLocator (which scans dir() of loaded modules) meet no deprecated name
    assert not {n for n, _ in NAMES} & (set(monai_srb.handlers.__all__) | set(dir(monai_srb.handlers)))
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        monai_srb.handlers.missing  # noqa: B018


# (old module, new module, names it gives)
MODULES = [
    ("mlflow_tracking", "monai_srb.tracking", ["SRBMLFlowHandler", "CHECKPOINT_SHA256_TAG", "RUN_ID_STATE_KEY"]),
    ("run_params", "monai_srb.tracking.run_params", ["config_overrides", "config_params", "describe_network"]),
    ("tracking_store", "monai_srb.tracking", ["check_tracking_server", "default_tracking_uri", "tracking_enabled"]),
    # models logged before the move name monai_srb.handlers.logged_model as their pyfunc loader
    ("logged_model", "monai_srb.tracking.logged_model", ["LoggedNetwork", "log_network", "_load_pyfunc"]),
]


@pytest.mark.parametrize("old,new,names", MODULES, ids=[m[0] for m in MODULES])
def test_old_modules_warn_on_import_and_give_the_moved_objects(monkeypatch, old, new, names):
    monkeypatch.delitem(sys.modules, f"monai_srb.handlers.{old}", raising=False)  # imported afresh: it warns once
    with pytest.warns(DeprecationWarning, match=rf"monai_srb\.handlers\.{old} is deprecated"):
        module = importlib.import_module(f"monai_srb.handlers.{old}")
    target = importlib.import_module(new)
    assert all(getattr(module, name) is getattr(target, name) for name in names)


def test_skip_monai_tracking_is_the_renamed_function(monkeypatch):
    monkeypatch.delitem(sys.modules, "monai_srb.handlers.tracking_store", raising=False)
    with pytest.warns(DeprecationWarning, match="disable_monai_mlflow_handlers"):
        module = importlib.import_module("monai_srb.handlers.tracking_store")
    assert module.skip_monai_tracking is monai_srb.tracking.disable_monai_mlflow_handlers
