"""recon4d.align: dense global alignment of pair predictions into one scene (DUSt3R's, faster).

`global_align(predictions, ...)` returns a `recon4d.scene.Scene`; `KnownCameras` passes known
intrinsics and/or poses (fixed or as initial values); `VideoTerms` adds MonST3R's video terms
(motion masks, optical flow, trajectory smoothness, shared focal). See docs/algorithms.md,
"Global alignment".
"""

from recon4d.align.api import SOLVERS, global_align
from recon4d.align.known import KnownCameras
from recon4d.align.video import VideoTerms

__all__ = ["SOLVERS", "KnownCameras", "VideoTerms", "global_align"]
