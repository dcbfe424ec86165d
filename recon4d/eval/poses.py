"""Camera pose metrics: Umeyama alignment, ATE and RPE, numerically the same as the evo package.

ATE = RMSE over frames of |t_est - t_gt| after aligning the estimate to the ground truth.
RPE over frame pairs (i, j = i + delta): E = (G_i^-1 G_j)^-1 (P_i^-1 P_j); translation error
|trans(E)|, rotation error = angle(rot(E)) in degrees; both reported as RMSE over the pairs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from recon4d.errors import InputError, Recon4dError
from recon4d.eval.trajectory import Trajectory, associate, read_tum

ALIGN_MODES = ("sim3", "se3", "scale", "none")

PoseInput = np.ndarray | Trajectory | str | os.PathLike


class AlignmentError(Recon4dError):
    """The trajectories cannot be aligned (too few poses, or all camera centres on a line)."""


@dataclass(frozen=True)
class Sim3:
    """x -> scale * rotation @ x + translation."""

    rotation: np.ndarray
    translation: np.ndarray
    scale: float

    def apply_points(self, points: np.ndarray) -> np.ndarray:
        """Transform (..., 3) points."""
        return self.scale * points @ self.rotation.T + self.translation

    def apply_poses(self, poses: np.ndarray) -> np.ndarray:
        """Transform (N, 4, 4) camera-to-world poses (rotations rotate, centres move)."""
        out = np.array(poses, dtype=np.float64, copy=True)
        out[:, :3, :3] = self.rotation @ poses[:, :3, :3]
        out[:, :3, 3] = self.apply_points(poses[:, :3, 3])
        return out


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> Sim3:
    """Least-squares similarity (Umeyama 1991) with dst ~ s R src + t, for (N, 3) point sets."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if len(src) < 3:
        raise AlignmentError(f"alignment needs at least 3 poses, got {len(src)}")
    mu_src, mu_dst = src.mean(0), dst.mean(0)
    src_c, dst_c = src - mu_src, dst - mu_dst
    cov = dst_c.T @ src_c / len(src)
    u, d, vt = np.linalg.svd(cov)
    if not d[0] > 0 or d[1] <= 1e-12 * d[0]:
        raise AlignmentError("alignment is degenerate: the camera centres are (nearly) on a "
                             "line or a point")
    sign = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2] = -1.0  # keep a proper rotation
    rotation = (u * sign) @ vt
    scale = float((d * sign).sum() / (src_c ** 2).sum() * len(src)) if with_scale else 1.0
    return Sim3(rotation, mu_dst - scale * rotation @ mu_src, scale)


def align_poses(est: np.ndarray, gt: np.ndarray, mode: str = "sim3") -> tuple[np.ndarray, Sim3]:
    """Align estimated camera centres to the ground truth; returns (aligned poses, transform).

    `sim3`: rotation, translation and scale; `se3`: rotation and translation; `scale`: only
    the Sim(3) scale, applied about the origin (evo's `--correct_scale` without `--align`);
    `none`: unchanged.
    """
    if mode not in ALIGN_MODES:
        raise InputError(f"unknown pose alignment {mode!r}; choose one of {ALIGN_MODES}")
    if mode == "none":
        transform = Sim3(np.eye(3), np.zeros(3), 1.0)
    else:
        transform = umeyama(est[:, :3, 3], gt[:, :3, 3], with_scale=mode != "se3")
        if mode == "scale":
            transform = Sim3(np.eye(3), np.zeros(3), transform.scale)
    return transform.apply_poses(est), transform


def rotation_angle(rot: np.ndarray) -> np.ndarray:
    """Rotation angle in radians of (..., 3, 3) rotation matrices, accurate near 0 and pi."""
    axis = np.stack([rot[..., 2, 1] - rot[..., 1, 2], rot[..., 0, 2] - rot[..., 2, 0],
                     rot[..., 1, 0] - rot[..., 0, 1]], axis=-1)
    cos = (np.trace(rot, axis1=-2, axis2=-1) - 1) / 2
    return np.arctan2(np.linalg.norm(axis, axis=-1) / 2, cos)


def ate_errors(est: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-frame distance between estimated and true camera centres."""
    return np.linalg.norm(est[:, :3, 3] - gt[:, :3, 3], axis=-1)


def pair_indices(n: int, delta: int, all_pairs: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """RPE frame pairs: all (i, i+delta), or (evo's default) consecutive ones of 0, delta, ..."""
    if delta < 1:
        raise InputError(f"RPE delta must be a positive number of frames, got {delta}")
    first = np.arange(n - delta) if all_pairs else np.arange(0, n, delta)[:-1]
    first = first[first + delta < n]
    return first, first + delta


def rigid_inverse(poses: np.ndarray) -> np.ndarray:
    """Inverse of (N, 4, 4) rigid transforms (transpose the rotation)."""
    inv = np.tile(np.eye(4), (len(poses), 1, 1))
    rot_t = np.swapaxes(poses[:, :3, :3], 1, 2)
    inv[:, :3, :3] = rot_t
    inv[:, :3, 3] = -(rot_t @ poses[:, :3, 3:4])[..., 0]
    return inv


def rpe_errors(est: np.ndarray, gt: np.ndarray, delta: int = 1,
               all_pairs: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair relative translation error and rotation error (degrees)."""
    i, j = pair_indices(len(est), delta, all_pairs)
    rel_est = rigid_inverse(est[i]) @ est[j]
    rel_gt = rigid_inverse(gt[i]) @ gt[j]
    err = rigid_inverse(rel_gt) @ rel_est
    return np.linalg.norm(err[:, :3, 3], axis=-1), np.degrees(rotation_angle(err[:, :3, :3]))


def rmse(values: np.ndarray) -> float:
    """Root mean square."""
    return float(np.sqrt(np.mean(np.square(values))))


def as_trajectory(value: PoseInput, name: str) -> Trajectory | np.ndarray:
    """A TUM path becomes a Trajectory; arrays are checked to be (N, 4, 4) and finite."""
    if isinstance(value, (str, os.PathLike)):
        return read_tum(value)
    if isinstance(value, Trajectory):
        return value
    poses = np.asarray(value, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise InputError(f"{name}: expected (N, 4, 4) camera-to-world poses, got {poses.shape}")
    return poses


def matched_poses(est: PoseInput, gt: PoseInput,
                  max_dt: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Corresponding (est, gt) poses: by timestamp when both carry one, else by index."""
    est_t, gt_t = as_trajectory(est, "est"), as_trajectory(gt, "gt")
    if isinstance(est_t, Trajectory) and isinstance(gt_t, Trajectory):
        i_gt, i_est = associate(gt_t.timestamps, est_t.timestamps, max_dt)
        if len(i_gt) == 0:
            raise InputError(f"no estimated timestamp is within {max_dt} s of a ground-truth one")
        return est_t.poses[i_est], gt_t.poses[i_gt]
    est_p = est_t.poses if isinstance(est_t, Trajectory) else est_t
    gt_p = gt_t.poses if isinstance(gt_t, Trajectory) else gt_t
    if len(est_p) != len(gt_p):
        raise InputError(f"estimated and ground-truth trajectories differ in length "
                         f"({len(est_p)} vs {len(gt_p)}) and have no timestamps to associate")
    return est_p, gt_p


def pose_metrics(est: PoseInput, gt: PoseInput, align: str = "sim3", delta: int = 1,
                 all_pairs: bool = True, max_dt: float = 0.01) -> dict[str, float]:
    """ATE and RPE of an estimated trajectory against the ground truth (see module docstring).

    `est`, `gt`: (N, 4, 4) camera-to-world arrays (matched by index), Trajectory objects or TUM
    files (matched by nearest timestamp within `max_dt` seconds). Returns `ate`, `rpe_trans`
    (RMSE, in ground-truth units), `rpe_rot` (RMSE, degrees), `scale` (of the alignment),
    `num_poses` and `num_pairs`.
    """
    est_p, gt_p = matched_poses(est, gt, max_dt)
    if not (np.isfinite(est_p).all() and np.isfinite(gt_p).all()):
        raise InputError("a pose contains NaN or infinity")
    aligned, transform = align_poses(est_p, gt_p, align)
    trans, rot = rpe_errors(aligned, gt_p, delta, all_pairs)
    if len(trans) == 0:
        raise InputError(f"RPE delta {delta} leaves no frame pair in {len(est_p)} poses")
    return {"ate": rmse(ate_errors(aligned, gt_p)), "rpe_trans": rmse(trans),
            "rpe_rot": rmse(rot), "scale": transform.scale,
            "num_poses": len(est_p), "num_pairs": len(trans)}
