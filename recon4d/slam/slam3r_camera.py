"""A camera per SLAM3R frame: the weighted Umeyama similarity of the frame's local pointmap
(its own camera frame, from I2P) onto its registered world points (from L2W), and the focal
length of the local pointmap; SLAM3R itself gives no poses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recon4d.align.focal import FOCAL_RANGE, estimate_focal
from recon4d.geometry.umeyama import umeyama


@dataclass
class FrameCamera:
    """Camera-to-world pose (4 x 4, rotation and translation in world units), focal (pixels),
    scale world / local and the weighted RMS residual of the fit (world units)."""

    pose_c2w: np.ndarray
    focal: float
    scale: float
    residual: float


def fit_camera(local: torch.Tensor, world: torch.Tensor, weights: torch.Tensor) -> FrameCamera:
    """Camera of one frame from local points (H, W, 3), world points (H, W, 3) and per-pixel
    weights (H, W) (zero = unused); the camera centre is where the local origin lands. The
    focal stays in the alignment's range (`FOCAL_RANGE`), as degenerate pointmaps would
    otherwise give 0 or infinity."""
    src = local.reshape(-1, 3).double().cpu().numpy()
    dst = world.reshape(-1, 3).double().cpu().numpy()
    w = weights.reshape(-1).double().cpu().numpy()
    scale, rot, trans = umeyama(src, dst, w)
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = rot, trans
    moved = float(scale) * src @ rot.T + trans
    residual = float(np.sqrt((w * ((moved - dst) ** 2).sum(-1)).sum() / max(w.sum(), 1e-12)))
    focal = float(estimate_focal(local[None].double().cpu(), min_focal=FOCAL_RANGE[0],
                                 max_focal=FOCAL_RANGE[1])[0])
    return FrameCamera(pose, focal, float(scale), residual)
