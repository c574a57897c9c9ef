"""
Deprecated: moved to :mod:`monai_srb.tracking.logged_model`. Models logged before the move name this module as their
``python_function`` loader (``loader_module`` in their MLmodel file), so it keeps ``_load_pyfunc`` for them; the
module goes in the next release, and such a model can be re-logged with :func:`monai_srb.tracking.log_network`.
"""

from __future__ import annotations

import warnings

from monai_srb.tracking.logged_model import (  # noqa: F401  (_load_pyfunc: the loader of models logged before)
    INPUT_METADATA_KEY,
    LoggedNetwork,
    ModelInputError,
    _load_pyfunc,
    input_contract,
    log_network,
    model_signature,
    save_model,
)

__all__ = [
    "INPUT_METADATA_KEY",
    "LoggedNetwork",
    "ModelInputError",
    "input_contract",
    "log_network",
    "model_signature",
    "save_model",
]

warnings.warn(
    "monai_srb.handlers.logged_model is deprecated and goes in the next release: import from "
    "monai_srb.tracking.logged_model.",
    DeprecationWarning,
    stacklevel=2,
)
