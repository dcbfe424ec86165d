"""Point-cloud metrics (accuracy, completion, Chamfer, F-score) and the clouds they compare.

accuracy = mean distance from each predicted point to its nearest ground-truth point,
completion = mean distance from each ground-truth point to its nearest predicted point,
chamfer = (accuracy + completion) / 2; precision / recall = fraction of predicted / ground-truth
points within `threshold` of the other cloud; fscore = 2 P R / (P + R). Medians are reported too.
"""

from __future__ import annotations

import numpy as np

from recon4d.errors import InputError
from recon4d.eval.optional import require
from recon4d.geometry import cameras


def nearest_distances(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Distance from each (N, 3) `src` point to its nearest (M, 3) `dst` point (KD-tree)."""
    spatial = require("scipy.spatial", "point-cloud metrics")
    return spatial.cKDTree(dst).query(src, k=1)[0]


def cloud_metrics(pred_pts: np.ndarray, gt_pts: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, completion, Chamfer distance and F-score at `threshold` (module docstring)."""
    pred = np.asarray(pred_pts, dtype=np.float64).reshape(-1, 3)
    gt = np.asarray(gt_pts, dtype=np.float64).reshape(-1, 3)
    if len(pred) == 0 or len(gt) == 0:
        raise InputError(f"point-cloud metrics need points on both sides "
                         f"(prediction {len(pred)}, ground truth {len(gt)})")
    if not (np.isfinite(pred).all() and np.isfinite(gt).all()):
        raise InputError("a point cloud contains NaN or infinity")
    if not threshold > 0:
        raise InputError(f"the F-score threshold must be positive, got {threshold}")
    to_gt, to_pred = nearest_distances(pred, gt), nearest_distances(gt, pred)
    precision, recall = float(np.mean(to_gt < threshold)), float(np.mean(to_pred < threshold))
    total = precision + recall
    return {
        "accuracy": float(to_gt.mean()), "accuracy_median": float(np.median(to_gt)),
        "completion": float(to_pred.mean()), "completion_median": float(np.median(to_pred)),
        "chamfer": float(to_gt.mean() + to_pred.mean()) / 2,
        "precision": precision, "recall": recall,
        "fscore": 2 * precision * recall / total if total > 0 else 0.0,
        "threshold": float(threshold), "pred_points": len(pred), "gt_points": len(gt),
    }


def voxel_downsample(points: np.ndarray, voxel: float) -> np.ndarray:
    """Centroid of the points in each occupied cube of side `voxel` (deterministic)."""
    if voxel <= 0 or len(points) == 0:
        return points
    keys = np.floor(points / voxel).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    sums = np.stack([np.bincount(inverse, weights=points[:, k]) for k in range(3)], axis=1)
    return sums / counts[:, None]


def depth_to_world(depth: np.ndarray, intrinsics: np.ndarray, cam_to_world: np.ndarray,
                   valid: np.ndarray) -> np.ndarray:
    """World points (M, 3) of the `valid` pixels of an (H, W) depth map, in row-major order."""
    return cameras.depth_to_world(depth, intrinsics, cam_to_world)[np.asarray(valid, bool)]
