"""Correctness of matches on a synthetic scene, from its ground-truth geometry and motion.

It lives with the scenes (above `recon4d.matching` in the layer order) because it reads their
ground truth; the matcher itself never sees it.
"""

from __future__ import annotations

import numpy as np

from recon4d.synthetic.flow import forward_flow
from recon4d.synthetic.scene import SyntheticScene


def correct_matches(scene: SyntheticScene, i: int, j: int, xy1: np.ndarray, xy2: np.ndarray,
                    tolerance_px: float = 2.0) -> np.ndarray:
    """Per match (x, y pixels of frames i and j): True when the surface point under `xy1` is
    visible in frame j (in front, inside, unoccluded) within `tolerance_px` of `xy2`.

    Moving objects are followed by their own motion (ground-truth flow from frame i to frame j).
    """
    flow, valid, _ = forward_flow(scene.depth[i], scene.instance[i], scene.depth[j],
                                  scene.intrinsics[i], scene.intrinsics[j], scene.poses_c2w[i],
                                  scene.poses_c2w[j], scene.object_poses[i], scene.object_poses[j])
    xy1, xy2 = np.asarray(xy1, dtype=np.int64), np.asarray(xy2, dtype=np.float64)
    target = xy1 + flow[xy1[:, 1], xy1[:, 0]]
    return valid[xy1[:, 1], xy1[:, 0]] & (np.linalg.norm(target - xy2, axis=1) <= tolerance_px)
