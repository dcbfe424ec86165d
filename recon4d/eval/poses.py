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
from recon4d.eval.trajectory import associate
from recon4d.geometry.rotations import rotation_angle
from recon4d.geometry.transforms import apply_similarity, invert_rigid
from recon4d.geometry.umeyama import point_moments, umeyama_from_moments
from recon4d.io.tum import Trajectory, read_tum
from recon4d.options.choices import POSE_ALIGN_MODES

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
        return apply_similarity(self.rotation, self.translation, points, self.scale)

    def apply_poses(self, poses: np.ndarray) -> np.ndarray:
        """Transform (N, 4, 4) camera-to-world poses (rotations rotate, centres move)."""
        out = np.array(poses, dtype=np.float64, copy=True)
        out[:, :3, :3] = self.rotation @ poses[:, :3, :3]
        out[:, :3, 3] = self.apply_points(poses[:, :3, 3])
        return out


def fit_sim3(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> Sim3:
    """Least-squares similarity (Umeyama) with dst ~ s R src + t, for (N, 3) camera centres.

    Unlike `recon4d.geometry.umeyama`, which returns the identity on degenerate input, a
    trajectory whose centres are (nearly) on a line or a point is refused: its rotation about
    that line is undetermined, so ATE and RPE would depend on an arbitrary choice.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if len(src) < 3:
        raise AlignmentError(f"alignment needs at least 3 poses, got {len(src)}")
    moments = point_moments(src, dst)
    spread = np.linalg.svd(moments.cross, compute_uv=False)
    if not spread[0] > 0 or spread[1] <= 1e-12 * spread[0]:
        raise AlignmentError("alignment is degenerate: the camera centres are (nearly) on a "
                             "line or a point")
    scale, rotation, translation = umeyama_from_moments(moments, with_scale)
    return Sim3(rotation, translation, float(scale))


def align_poses(est: np.ndarray, gt: np.ndarray, mode: str = "sim3") -> tuple[np.ndarray, Sim3]:
    """Align estimated camera centres to the ground truth; returns (aligned poses, transform).

    `sim3`: rotation, translation and scale; `se3`: rotation and translation; `scale`: only
    the Sim(3) scale, applied about the origin (evo's `--correct_scale` without `--align`);
    `none`: unchanged.
    """
    if mode not in POSE_ALIGN_MODES:
        raise InputError(f"unknown pose alignment {mode!r}; choose one of {POSE_ALIGN_MODES}")
    if mode == "none":
        transform = Sim3(np.eye(3), np.zeros(3), 1.0)
    else:
        transform = fit_sim3(est[:, :3, 3], gt[:, :3, 3], with_scale=mode != "se3")
        if mode == "scale":
            transform = Sim3(np.eye(3), np.zeros(3), transform.scale)
    return transform.apply_poses(est), transform


def fit_sim3_to_poses(est: np.ndarray, gt: np.ndarray, with_scale: bool = True) -> Sim3:
    """Similarity mapping estimated (N, 4, 4) camera-to-world poses onto the true ones using
    the camera orientations as well as the centres, for moving a point cloud.

    The rotation maximises tr(R^T M) with M = C / (|X| |Y|) + mean_i R_gt,i R_est,i^T, where C
    is the centred cross-covariance of the centres (Kabsch with both kinds of evidence, each
    term at most 1 in norm): centres on an arc or a line leave the rotation about it to the
    orientations, which a centres-only fit (`fit_sim3`, the ATE protocol) picks arbitrarily.
    The scale and translation then fit the centres.
    """
    est, gt = np.asarray(est, np.float64), np.asarray(gt, np.float64)
    if len(est) < 2:
        raise AlignmentError(f"aligning a cloud by its cameras needs at least 2 poses, "
                             f"got {len(est)}")
    src, dst = est[:, :3, 3], gt[:, :3, 3]
    src_c, dst_c = src - src.mean(0), dst - dst.mean(0)
    spread = np.linalg.norm(src_c) * np.linalg.norm(dst_c)
    rotations = est[:, :3, :3] / np.cbrt(np.linalg.det(est[:, :3, :3]))[:, None, None]
    cross = dst_c.T @ src_c
    target = (gt[:, :3, :3] @ rotations.transpose(0, 2, 1)).mean(0)
    if spread > 0:
        target = target + cross / spread
    u, _, vh = np.linalg.svd(target)
    rotation = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vh))]) @ vh
    var_src = float((src_c**2).sum())
    scale = float(np.trace(rotation.T @ cross)) / var_src if with_scale and var_src > 0 else 1.0
    if not scale > 0:
        raise AlignmentError("aligning a cloud by its cameras: the camera centres give no "
                             "positive scale")
    return Sim3(rotation, dst.mean(0) - scale * rotation @ src.mean(0), scale)


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


def rpe_errors(est: np.ndarray, gt: np.ndarray, delta: int = 1,
               all_pairs: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair relative translation error and rotation error (degrees)."""
    i, j = pair_indices(len(est), delta, all_pairs)
    rel_est = invert_rigid(est[i]) @ est[j]
    rel_gt = invert_rigid(gt[i]) @ gt[j]
    err = invert_rigid(rel_gt) @ rel_est
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
