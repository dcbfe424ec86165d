"""Ground truth for the MASt3R-SLAM tests: true frame-to-keyframe correspondences of a synthetic
scene, from its depth maps and poses only (independent of the matcher)."""

from __future__ import annotations

import numpy as np

from recon4d.geometry.cameras import project
from recon4d.geometry.transforms import apply_transform, invert_rigid
from recon4d.synthetic.scene import SyntheticScene


def true_matches(scene: SyntheticScene, frame: int, keyframe: int) -> tuple[np.ndarray, ...]:
    """(uv (H, W, 2) continuous frame positions of every keyframe pixel, visible (H, W)):
    keyframe surface points projected into the frame, visible where the frame's depth at one
    of the 3 x 3 pixels around the projection agrees within 3 %, at least one pixel inside."""
    cam = apply_transform(invert_rigid(scene.poses_c2w[frame]), scene.world_points(keyframe))
    uv, z = project(cam, scene.intrinsics[frame])
    height, width = scene.shape
    pix = np.round(np.nan_to_num(uv, nan=-1)).astype(int)
    inside = ((z > 0) & (pix[..., 0] >= 1) & (pix[..., 0] < width - 1) & (pix[..., 1] >= 1)
              & (pix[..., 1] < height - 1))
    agrees = np.zeros(z.shape, bool)
    for dv in (-1, 0, 1):
        for du in (-1, 0, 1):
            depth = scene.depth[frame][(pix[..., 1] + dv).clip(0, height - 1),
                                       (pix[..., 0] + du).clip(0, width - 1)]
            agrees |= np.abs(depth - z) < 0.03 * z
    return uv, inside & agrees & (scene.depth[keyframe] > 0)
