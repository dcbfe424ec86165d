"""Pinhole cameras: pixel grids, rays, back-projection of depth maps, projection, placement.

Pixel centres are at integer coordinates (u = column, v = row); depth is the camera z.
"""

from __future__ import annotations

import numpy as np

from recon4d.geometry.backend import Array, arange, as_float, namespace
from recon4d.geometry.transforms import apply_matrix, apply_transform, make_rigid


def pixel_grid(height: int, width: int, like: Array | None = None) -> Array:
    """(H, W, 2) pixel-centre coordinates (u, v) = (column, row); `like` picks the kind."""
    xp = namespace(like)
    us, vs = xp.meshgrid(arange(xp, width, like), arange(xp, height, like), indexing="xy")
    return xp.stack((us, vs), axis=-1)


def intrinsics_matrix(focals: Array, principal_points: Array) -> Array:
    """(..., 3, 3) K of (...) or (..., 2) focals (fx, fy) and (..., 2) principal points.

    Tensors: K has the principal points' dtype (autograd flows through both inputs).
    """
    xp = namespace(focals, principal_points)
    principal_points = as_float(xp, principal_points)
    focals = as_float(xp, focals, like=principal_points)
    if focals.shape[-1:] != (2,) or focals.ndim < principal_points.ndim:
        focals = xp.stack((focals, focals), axis=-1)
    zero, one = xp.zeros_like(focals[..., 0]), xp.ones_like(focals[..., 0])
    entries = (focals[..., 0], zero, principal_points[..., 0],
               zero, focals[..., 1], principal_points[..., 1], zero, zero, one)
    return xp.stack(entries, axis=-1).reshape(*focals.shape[:-1], 3, 3)


def camera_rays(intrinsics: Array, height: int, width: int) -> Array:
    """(..., H, W, 3) rays K^-1 [u, v, 1] (z = 1) of (..., 3, 3) K: a point at depth d is d*ray."""
    xp = namespace(intrinsics)
    k = as_float(xp, intrinsics)
    grid = pixel_grid(height, width, like=k)
    fx, fy, cx, cy, s = (k[..., i, j][..., None, None] for i, j in
                         ((0, 0), (1, 1), (0, 2), (1, 2), (0, 1)))
    y = (grid[..., 1] - cy) / fy
    x = (grid[..., 0] - cx - s * y) / fx
    return xp.stack((x, y, xp.ones_like(x)), axis=-1)


def unproject_depth(depth: Array, intrinsics: Array) -> Array:
    """Camera-frame points (..., H, W, 3) of z-depth maps (..., H, W); depth 0 gives the origin."""
    xp = namespace(depth, intrinsics)
    depth = as_float(xp, depth)
    rays = camera_rays(as_float(xp, intrinsics, like=depth), *depth.shape[-2:])
    return rays * depth[..., None]


def depth_to_world(depth: Array, intrinsics: Array, cam_to_world: Array) -> Array:
    """World points (..., H, W, 3) of depth maps (..., H, W) seen by cameras (..., 4, 4)."""
    points = unproject_depth(depth, intrinsics)
    xp = namespace(points)
    return apply_transform(as_float(xp, cam_to_world, like=points), points)


def project(points: Array, intrinsics: Array) -> tuple[Array, Array]:
    """Pixel coordinates (..., 2) and depth z (...) of camera-frame points (*B, *P, 3).

    Points with z = 0 give non-finite pixels; z < 0 (behind the camera) project mirrored.
    """
    xp = namespace(points, intrinsics)
    points = as_float(xp, points)
    uvw = apply_matrix(as_float(xp, intrinsics, like=points), points)
    with np.errstate(divide="ignore", invalid="ignore"):
        return uvw[..., :2] / uvw[..., 2:3], points[..., 2]


def look_at(eye: Array, target: Array, up: Array = (0.0, 0.0, 1.0)) -> Array:
    """Camera-to-world poses (..., 4, 4) at `eye` looking at `target`, OpenCV axes, world `up`."""
    xp = namespace(eye, target, up)
    eye = as_float(xp, eye)
    target, up = as_float(xp, target, like=eye), as_float(xp, up, like=eye)
    forward = target - eye
    forward = forward / xp.linalg.norm(forward, axis=-1, keepdims=True)
    right = xp.linalg.cross(forward, xp.broadcast_to(up, forward.shape))
    right = right / xp.linalg.norm(right, axis=-1, keepdims=True)
    down = xp.linalg.cross(forward, right)
    return make_rigid(xp.stack((right, down, forward), axis=-1), eye)


def intrinsics_from_fov(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """Pinhole K (3, 3): horizontal field of view `hfov_deg`, principal point (W/2, H/2)."""
    focal = (width / 2.0) / np.tan(np.radians(hfov_deg) / 2.0)
    return intrinsics_matrix(focal, np.array([width / 2.0, height / 2.0]))
