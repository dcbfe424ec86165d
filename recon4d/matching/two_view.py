"""Relative pose of two cameras and 3D points of their matched pixels, from the pointmaps.

For a pair (1, 2) the network gives image 1 in camera 1 (pair 1->2, `pred1.pts3d`) and image 2 in
camera 2 (pair 2->1, `pred1.pts3d`). A match links a 3D point of each; the similarity transform
that maps camera-2 points onto camera-1 points over the matches is the pose of camera 2 in
camera 1 (plus the scale ratio of the two predictions). Using matches, not all pixels, means the
pose follows the masked content only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recon4d.errors import Recon4dError
from recon4d.geometry.transforms import apply_similarity, make_rigid
from recon4d.geometry.umeyama import umeyama

# Residuals below this fraction of the matched cloud's RMS spread count as exact: without a
# floor, exact data has a median residual of rounding noise and "k x median" drops true inliers.
RESIDUAL_FLOOR = 1e-6


@dataclass
class Similarity:
    """dst = scale * rotation @ src + translation."""

    scale: float
    rotation: torch.Tensor  # (3, 3)
    translation: torch.Tensor  # (3,)

    def apply(self, pts: torch.Tensor) -> torch.Tensor:
        """Transform points (..., 3)."""
        return apply_similarity(self.rotation, self.translation, pts, self.scale)

    def pose(self) -> torch.Tensor:
        """4x4 rigid transform [R | t] (camera-to-world when dst is the world frame)."""
        return make_rigid(self.rotation, self.translation)


def fit_similarity(src: torch.Tensor, dst: torch.Tensor,
                   weights: torch.Tensor | None = None) -> Similarity:
    """Weighted least-squares similarity transform src -> dst (Umeyama), points (M, 3), M >= 3.

    Float64 results; degenerate inputs give scale 1 and the identity rotation
    (`recon4d.geometry.umeyama.umeyama`).
    """
    scale, rotation, translation = umeyama(src, dst, weights)
    return Similarity(float(scale), rotation, translation)


def robust_similarity(src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor | None = None,
                      rounds: int = 3, keep_factor: float = 3.0) -> tuple[Similarity, torch.Tensor]:
    """Similarity fit that drops matches whose residual exceeds `keep_factor` x the median
    residual and refits, `rounds` times; returns the fit and its final inlier mask.

    Residuals up to RESIDUAL_FLOOR x the RMS spread of `dst` are always kept, so on (nearly)
    exact data rounding noise never decides which true inliers survive.
    """
    if src.shape[0] < 3:
        raise Recon4dError(f"a relative pose needs at least 3 matches, got {src.shape[0]}")
    src, dst = src.double(), dst.double()
    floor = RESIDUAL_FLOOR * (dst - dst.mean(0)).square().sum(1).mean().sqrt()
    inliers = torch.ones(src.shape[0], dtype=torch.bool)
    fit = fit_similarity(src, dst, weights)
    for _ in range(rounds):
        residual = (fit.apply(src) - dst).norm(dim=1)
        new = residual <= torch.maximum(keep_factor * residual.median(), floor)
        if new.sum() < 3 or torch.equal(new, inliers):
            break
        inliers = new
        fit = fit_similarity(src[inliers], dst[inliers],
                             None if weights is None else weights[inliers])
    return fit, inliers


@dataclass
class TwoView:
    """Pose of camera 2 in camera 1 and 3D points of the matches in camera 1."""

    pose: torch.Tensor  # (4, 4) camera-2-to-camera-1, translation in camera-1 prediction units
    scale: float  # size of the 2->1 prediction relative to the 1->2 one
    pts3d: torch.Tensor  # (M, 3) matched points of image 1 in camera 1
    residual: torch.Tensor  # (M,) distance between the two predictions of each matched point
    inliers: torch.Tensor  # (M,) bool, matches used by the final fit


def two_view_geometry(pts1_cam1: torch.Tensor, pts2_cam2: torch.Tensor, xy1: torch.Tensor,
                      xy2: torch.Tensor, weights: torch.Tensor | None = None) -> TwoView:
    """Pose and points from own-frame pointmaps (H, W, 3) of images 1 and 2 and matches (M, 2)."""
    a = pts1_cam1[xy1[:, 1], xy1[:, 0]].double().cpu()
    b = pts2_cam2[xy2[:, 1], xy2[:, 0]].double().cpu()
    fit, inliers = robust_similarity(b, a, None if weights is None else weights.cpu())
    residual = (fit.apply(b) - a).norm(dim=1)
    return TwoView(fit.pose(), fit.scale, a.float(), residual.float(), inliers)
