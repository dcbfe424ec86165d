"""recon4d.models.slam3r: SLAM3R's I2P and L2W networks, their configs and checkpoint loading.

Names are imported on first use, so `recon4d.models.slam3r.config` stays free of torch.
"""

from __future__ import annotations

from recon4d.lazy import lazy_getattr

_LAZY = {
    "Slam3rConfig": "recon4d.models.slam3r.config",
    "I2PNetwork": "recon4d.models.slam3r.network",
    "L2WNetwork": "recon4d.models.slam3r.network",
    "build_slam3r": "recon4d.models.slam3r.network",
    "load_slam3r": "recon4d.models.slam3r.loading",
    "select_scene_frames": "recon4d.models.slam3r.retrieval",
}

__all__ = sorted(_LAZY)
__getattr__ = lazy_getattr(__name__, _LAZY)
