"""Scores of an alignment result against a synthetic scene's truth, shared by the benchmarks."""

from __future__ import annotations

import numpy as np


def camera_and_depth_scores(result: dict[str, np.ndarray], scene) -> dict[str, float]:
    """ATE (Sim(3), % of the true camera path), median focal error (%) and depth AbsRel
    (per-frame median scaling) of `result` (poses, intrinsics, depths) against `scene`."""
    from recon4d.eval import depth_metrics, pose_metrics

    gt = scene.poses_c2w
    path = float(np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1).sum())
    ate = pose_metrics(result["poses"], gt, align="sim3")["ate"]
    focal = np.median(np.abs(result["intrinsics"][:, 0, 0] / scene.intrinsics[:, 0, 0] - 1))
    abs_rel = depth_metrics(result["depths"], scene.depth, align="median")["abs_rel"]
    return {"ate_pct": 100 * ate / path, "focal_pct": 100 * float(focal),
            "abs_rel": float(abs_rel)}
