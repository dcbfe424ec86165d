"""recon4d.align: dense global alignment of pair predictions into one scene (DUSt3R's, faster).

`global_align(predictions, ...)` returns a `recon4d.scene.Scene`; `KnownCameras` passes known
intrinsics and/or poses (fixed or as initial values). See docs/algorithms.md, "Global alignment".
"""

from recon4d.align.api import SOLVERS, global_align
from recon4d.align.known import KnownCameras

__all__ = ["SOLVERS", "KnownCameras", "global_align"]
