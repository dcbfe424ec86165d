"""An oracle for SLAM3R's networks (`recon4d.slam.slam3r_backend.Slam3rBackend`), answered from
a synthetic scene's ground truth with the pair oracle's corruption (`OracleCorruption`).

- I2P: every window view's corrupted points in the camera of the window's reference, times one
  random scale per window (scale_sigma), with the pair oracle's confidences;
- L2W: the sources' corrupted points mapped into the world frame *the given scene frames live
  in*: the similarity from the true world onto the scene frames' world points (a least-squares
  fit, refit without gross residuals), so errors of earlier registrations propagate as they
  would for the network;
- correlation: per patch, 1 + conf_peak x the fraction of the candidate's surface pixels that
  the source camera sees (in its image, depth-consistent), so scores rank true overlap.
"""

from __future__ import annotations

import numpy as np
import torch

from recon4d.geometry.cameras import project
from recon4d.geometry.transforms import apply_transform, invert_rigid
from recon4d.geometry.umeyama import umeyama
from recon4d.synthetic.oracle import OracleCorruption, OracleModel
from recon4d.synthetic.scene import SyntheticScene

PATCH = 16  # SLAM3R's patch size: correlation scores come per 16 x 16 patch
VISIBLE_TOLERANCE = 0.05  # relative depth difference still counted as the same surface
GROSS_RESIDUAL = 3.0  # the L2W fit is redone without residuals above this x their median


class Slam3rOracle(OracleModel):
    """SLAM3R's encode / i2p / l2w / corr for `scene`; a frame's code is its scene index."""

    def __init__(self, scene: SyntheticScene, corruption: OracleCorruption | None = None,
                 seed: int = 0) -> None:
        super().__init__(scene, corruption, seed=seed)

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, 10, *key])

    def encode(self, frame: dict) -> int:
        """The scene index of a view dict (its `idx`), checked against the scene."""
        frames = self._frames(frame, "frame")
        return frames[0]

    def i2p(self, windows: list[list[int]], ref_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Points V x B x H x W x 3 in each window's reference camera, confidences V x B x H x W."""
        points, confs = [], []
        for window in windows:
            ref = window[ref_id]
            factor = np.exp(self._rng(1, ref, *window).normal() * self.corruption.scale_sigma)
            views = [self.predict_view(i, ref, self._rng(2, ref, i)) for i in window]
            points.append(np.stack([v["pts3d"] * factor for v in views]))
            confs.append(np.stack([v["conf"] for v in views]))
        return (torch.from_numpy(np.stack(points, 1)).float(),
                torch.from_numpy(np.stack(confs, 1)).float())

    def l2w(self, scene: list[int], scene_points: torch.Tensor, sources: list[int],
            source_points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World points M x H x W x 3 and confidences M x H x W of the sources, in the world
        frame of the scene frames' points (`source_points` are not needed: truth replaces them)."""
        est = scene_points.double().cpu().numpy().reshape(-1, 3)
        truth = np.stack([self.scene.world_points(i) for i in scene]).reshape(-1, 3)
        valid = (np.linalg.norm(est, axis=-1) > 0) & (
            np.stack([self.scene.depth[i] for i in scene]).reshape(-1) > 0)
        scale, rot, trans = umeyama(truth[valid], est[valid])
        residual = np.linalg.norm(scale * truth[valid] @ rot.T + trans - est[valid], axis=-1)
        inlier = residual <= GROSS_RESIDUAL * np.median(residual)
        scale, rot, trans = umeyama(truth[valid][inlier], est[valid][inlier])
        points, confs = [], []
        for i in sources:
            view = self.predict_view(i, i, self._rng(3, i))
            world = apply_transform(self.scene.poses_c2w[i], view["pts3d"])
            points.append(scale * world @ rot.T + trans)
            confs.append(view["conf"])
        return torch.from_numpy(np.stack(points)).float(), torch.from_numpy(np.stack(confs))

    def corr(self, sources: list[int], candidates: list[int]) -> torch.Tensor:
        """Scores C x B x S: 1 + conf_peak x each candidate patch's fraction seen by the source."""
        height, width = self.scene.shape
        out = np.ones((len(candidates), len(sources), (height // PATCH) * (width // PATCH)))
        for c, cand in enumerate(candidates):
            surface = self.scene.depth[cand] > 0
            world = self.scene.world_points(cand)
            for b, src in enumerate(sources):
                seen = self._seen(world, src) & surface
                patches = seen[:height // PATCH * PATCH, :width // PATCH * PATCH].reshape(
                    height // PATCH, PATCH, width // PATCH, PATCH).mean(axis=(1, 3))
                out[c, b] = 1.0 + self.corruption.conf_peak * patches.reshape(-1)
        return torch.from_numpy(out).float()

    def _seen(self, world: np.ndarray, frame: int) -> np.ndarray:
        """Which world points (H, W, 3) frame `frame` sees: in front, inside its image, and at
        the depth its depth map has there."""
        height, width = self.scene.shape
        cam = apply_transform(invert_rigid(self.scene.poses_c2w[frame]), world)
        uv, z = project(cam, self.scene.intrinsics[frame])
        uv = np.nan_to_num(np.round(uv), nan=-1, posinf=-1, neginf=-1).astype(np.int64)
        inside = (z > 0) & (uv[..., 0] >= 0) & (uv[..., 0] < width) & (uv[..., 1] >= 0) & (
            uv[..., 1] < height)
        depth = self.scene.depth[frame][uv[..., 1].clip(0, height - 1),
                                        uv[..., 0].clip(0, width - 1)]
        return inside & (np.abs(depth - z) <= VISIBLE_TOLERANCE * np.maximum(z, 1e-12))
