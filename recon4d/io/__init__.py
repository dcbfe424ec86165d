"""recon4d.io: images and videos in, model-input views out; writers for the output formats.

The names below are imported on first use, so light modules (`recon4d.io.atomic`, the CLI's
output checks) do not pull in torch and Pillow.
"""

from __future__ import annotations

from recon4d.lazy import lazy_getattr

_LAZY = {
    "load_images": "recon4d.io.images",
    "FrameSource": "recon4d.io.sources",
    "collect_frames": "recon4d.io.sources",
    "VideoFrames": "recon4d.io.video",
    "read_video": "recon4d.io.video",
}

__all__ = sorted(_LAZY)
__getattr__ = lazy_getattr(__name__, _LAZY)
