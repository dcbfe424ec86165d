"""Rigid transforms and pinhole camera maths (OpenCV axes: x right, y down, z forward)."""

from __future__ import annotations

import numpy as np


def rigid(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """4x4 homogeneous matrices from rotations (..., 3, 3) and translations (..., 3)."""
    rotation = np.asarray(rotation, dtype=np.float64)
    out = np.zeros(rotation.shape[:-2] + (4, 4))
    out[..., :3, :3] = rotation
    out[..., :3, 3] = translation
    out[..., 3, 3] = 1.0
    return out


def invert_rigid(pose: np.ndarray) -> np.ndarray:
    """Inverse of rigid 4x4 transforms (..., 4, 4) using R^T (exact, no general inverse)."""
    rot_t = np.swapaxes(pose[..., :3, :3], -1, -2)
    return rigid(rot_t, -np.einsum("...ij,...j->...i", rot_t, pose[..., :3, 3]))


def axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about a unit `axis` (3,) by `angle` radians (...,)."""
    x, y, z = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    c, s = np.cos(angle), np.sin(angle)
    one_c = 1.0 - c
    rows = [[c + x * x * one_c, x * y * one_c - z * s, x * z * one_c + y * s],
            [y * x * one_c + z * s, c + y * y * one_c, y * z * one_c - x * s],
            [z * x * one_c - y * s, z * y * one_c + x * s, c + z * z * one_c]]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = (0.0, 0.0, 1.0)) -> np.ndarray:
    """Camera-to-world poses (..., 4, 4) at `eye` looking at `target`, OpenCV axes, world `up`."""
    eye, target = np.asarray(eye, dtype=np.float64), np.asarray(target, dtype=np.float64)
    forward = target - eye
    forward = forward / np.linalg.norm(forward, axis=-1, keepdims=True)
    right = np.cross(forward, np.broadcast_to(np.asarray(up, dtype=np.float64), forward.shape))
    right = right / np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(forward, right)
    return rigid(np.stack([right, down, forward], axis=-1), eye)


def intrinsics_from_fov(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """Pinhole K (3x3, pixels): horizontal field of view `hfov_deg`, principal point (W/2, H/2)."""
    focal = (width / 2.0) / np.tan(np.radians(hfov_deg) / 2.0)
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def pixel_rays(intrinsics: np.ndarray, width: int, height: int) -> np.ndarray:
    """Camera-frame rays K^-1 [u, v, 1] of the integer pixel centres, (H, W, 3) with z = 1."""
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    fx, fy, cx, cy = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]
    skew = intrinsics[0, 1]
    y = (v - cy) / fy
    x = (u - cx - skew * y) / fx
    return np.stack([x, y, np.ones_like(x)], axis=-1)


def unproject(depth: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Camera-frame points (H, W, 3) of a z-depth map (H, W); zero depth gives the origin."""
    height, width = depth.shape
    return pixel_rays(intrinsics, width, height) * depth[..., None]


def project(points: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (..., 2) and z (...) of camera-frame points (..., 3)."""
    z = points[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uvw = points @ intrinsics.T
        uv = uvw[..., :2] / uvw[..., 2:3]
    return uv, z
