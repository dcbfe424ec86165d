"""recon4d.models: the DUSt3R/MASt3R network, its architecture and checkpoint loading.

SLAM3R's two networks (I2P, L2W) and their loader are in `recon4d.models.slam3r`.

`load_model` and `build_model` are imported on first use, so that importing a light submodule
(`recon4d.models.config`, `.registry`) does not pull in torch and huggingface_hub.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from recon4d.models.config import ModelConfig

if TYPE_CHECKING:
    from recon4d.models.loading import load_model
    from recon4d.models.network import build_model

_LAZY = {"load_model": "recon4d.models.loading", "build_model": "recon4d.models.network"}
__all__ = ["ModelConfig", "build_model", "load_model"]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
