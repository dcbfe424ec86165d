"""A smooth virtual camera path for replaying a reconstruction, derived from its own trajectory.

Recorded trajectories shake (a hand-held phone, per-frame pose noise), and replaying the cloud
from the recorded cameras shows each frame's own depth map, hiding the 3D. The virtual camera
of frame i is therefore:

1. **smoothed**: a Gaussian-weighted local *linear* fit over time (sigma in frames) of the
   position and of the rotation quaternion (made continuous: each in the hemisphere of the one
   before; renormalised after the fit). A local linear fit keeps uniform motion and turning
   exact up to the first and last frame, where a plain Gaussian average would drag the ends
   inwards; the quaternion fit is a close approximation of an average on the rotation group
   while the camera turns by less than a few tens of degrees within the kernel;
2. **pulled back and lifted**: moved `pull_back * distance` behind and `lift * distance` above
   the smoothed camera (its own -z and -y axes, OpenCV), then turned to look at the point
   `distance` ahead of the smoothed camera (`distance`: typically the median scene depth), so
   the view still centres on what the camera filmed, with the camera's up kept.
"""

from __future__ import annotations

import numpy as np

from recon4d.geometry.cameras import look_at
from recon4d.geometry.quaternions import matrix_to_quat, quat_to_matrix
from recon4d.geometry.transforms import make_rigid

SMOOTH_SIGMA = 3.0  # frames
PULL_BACK = 0.3  # times the viewing distance, behind the smoothed camera
LIFT = 0.15  # times the viewing distance, above the smoothed camera


def gaussian_weights(count: int, sigma: float) -> np.ndarray:
    """(count, count) weights exp(-(i - j)^2 / (2 sigma^2)), each row summing to one."""
    offsets = np.arange(count)[:, None] - np.arange(count)[None, :]
    weights = np.exp(-0.5 * (offsets / max(sigma, 1e-9)) ** 2)
    return weights / weights.sum(axis=1, keepdims=True)


def local_linear_weights(count: int, sigma: float) -> np.ndarray:
    """(count, count) smoother L: `L @ x` is, at each i, the value at i of the Gaussian-weighted
    least-squares line through (j, x_j). It reproduces straight lines exactly, ends included."""
    weights = gaussian_weights(count, sigma)
    offsets = np.arange(count)[None, :] - np.arange(count)[:, None]  # j - i
    s1 = (weights * offsets).sum(axis=1, keepdims=True)
    s2 = (weights * offsets**2).sum(axis=1, keepdims=True)
    denominator = s2 - s1**2  # rows of `weights` sum to one
    if (denominator <= 0).any():  # one frame, or sigma too small for a neighbour to count
        return weights
    return weights * (s2 - s1 * offsets) / denominator


def continuous_quats(rotations: np.ndarray) -> np.ndarray:
    """(N, 4) quaternions of (N, 3, 3) rotations, each in the hemisphere of the one before
    (q and -q are the same rotation; a fit over time needs them to vary continuously)."""
    quats = matrix_to_quat(rotations)
    flips = np.where(np.sum(quats[1:] * quats[:-1], axis=1) < 0, -1.0, 1.0)
    return quats * np.concatenate(([1.0], np.cumprod(flips)))[:, None]


def smooth_poses(poses_c2w: np.ndarray, sigma: float = SMOOTH_SIGMA) -> np.ndarray:
    """(N, 4, 4) camera-to-world poses smoothed over time (module doc, step 1)."""
    poses_c2w = np.asarray(poses_c2w, dtype=np.float64)
    smoother = local_linear_weights(len(poses_c2w), sigma)
    quats = smoother @ continuous_quats(poses_c2w[:, :3, :3])  # normalised by quat_to_matrix
    return make_rigid(quat_to_matrix(quats), smoother @ poses_c2w[:, :3, 3])


def virtual_camera_path(poses_c2w: np.ndarray, distance: float, sigma: float = SMOOTH_SIGMA,
                        pull_back: float = PULL_BACK, lift: float = LIFT) -> np.ndarray:
    """(N, 4, 4) camera-to-world poses of the virtual camera along a trajectory (module doc)."""
    smooth = smooth_poses(poses_c2w, sigma)
    position, down, forward = smooth[:, :3, 3], smooth[:, :3, 1], smooth[:, :3, 2]
    eye = position - distance * (pull_back * forward + lift * down)
    return look_at(eye, position + distance * forward, up=-down)
