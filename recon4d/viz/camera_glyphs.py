"""How the viewer draws cameras: frustum shape and orientation per frame, and the glyph scale."""

from __future__ import annotations

import numpy as np

from recon4d.geometry.quaternions import matrix_to_quat

DEFAULT_FOV = np.deg2rad(60.0)  # vertical field of view of a camera without intrinsics
DEFAULT_ASPECT = 4.0 / 3.0


def frustum_shapes(intrinsics: np.ndarray | None, image_size: tuple[int, int] | None,
                   frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(vertical field of view in radians (N,), aspect width / height (N,)) of each camera;
    generic values without intrinsics."""
    if intrinsics is None or image_size is None:
        return np.full(frames, DEFAULT_FOV), np.full(frames, DEFAULT_ASPECT)
    width, height = image_size
    fov = 2.0 * np.arctan2(height / 2.0, np.asarray(intrinsics)[:, 1, 1])
    return fov, np.full(frames, width / height)


def orientations_wxyz(poses_c2w: np.ndarray) -> np.ndarray:
    """(N, 4) camera-to-world rotations as w, x, y, z quaternions (viser's order)."""
    return np.roll(matrix_to_quat(np.asarray(poses_c2w)[:, :3, :3]), 1, axis=-1)


def scene_scale(points: np.ndarray, centres: np.ndarray) -> float:
    """A typical size of the scene: the median distance of the points (and camera centres) from
    their median; 1.0 for a single point."""
    both = np.concatenate([np.asarray(points, np.float64).reshape(-1, 3), centres], axis=0)
    spread = float(np.median(np.linalg.norm(both - np.median(both, axis=0), axis=1)))
    return spread if spread > 0 else 1.0
