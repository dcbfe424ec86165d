"""Optional dependencies of the evaluation code, imported on first use with a clear message."""

from __future__ import annotations

import importlib
from types import ModuleType

from recon4d.errors import Recon4dError


def require(module: str, purpose: str) -> ModuleType:
    """Import `module` or raise a Recon4dError telling how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise Recon4dError(f"{purpose} needs {module.split('.')[0]}: "
                           "pip install 'recon4d[eval]'") from None
