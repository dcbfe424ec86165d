"""Ground-truth scene flow and optical flow between consecutive rendered frames.

A pixel's surface point X at frame t belongs to object k; at t+1 it is M_k(t+1) M_k(t)^-1 X
(static points do not move). Its projection into camera t+1 gives the optical flow; it is valid
when in front of camera t+1, inside the image and not occluded there.
"""

from __future__ import annotations

import numpy as np

from recon4d.geometry.cameras import depth_to_world, pixel_grid, project
from recon4d.geometry.transforms import apply_transform, invert_rigid

VISIBILITY_TOLERANCE = 1e-4  # relative depth slack of the occlusion test


def move_points(points: np.ndarray, instance: np.ndarray, poses_from: np.ndarray,
                poses_to: np.ndarray) -> np.ndarray:
    """Points (..., 3) of objects `instance` carried from object poses `poses_from` to `poses_to`.

    Object 0 and objects whose pose is unchanged are copied, so their scene flow is exactly zero.
    """
    moved = points.copy()
    relative = poses_to @ invert_rigid(poses_from)  # (K+1, 4, 4)
    for k in np.unique(instance[instance > 0]):
        if np.array_equal(poses_from[k], poses_to[k]):
            continue
        sel = instance == k
        moved[sel] = apply_transform(relative[k], points[sel])
    return moved


def _visible(depth_next: np.ndarray, uv: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Not occluded: some pixel centre around `uv` sees a surface at depth >= z (or nothing).

    On a plane 1/depth is affine in the pixel, so a visible point's depth never exceeds the
    largest depth of the four pixel centres around it; a nearer occluder covering all four hides it.
    """
    height, width = depth_next.shape
    far = np.where(depth_next > 0, depth_next, np.inf).ravel()
    u0 = np.clip(np.floor(uv[..., 0]).astype(np.int64), 0, width - 1)
    v0 = np.clip(np.floor(uv[..., 1]).astype(np.int64), 0, height - 1)
    du = (u0 < width - 1).astype(np.int64)
    dv = np.where(v0 < height - 1, width, 0)
    i00 = v0 * width + u0
    nearest_max = np.maximum(np.maximum(far[i00], far[i00 + du]),
                             np.maximum(far[i00 + dv], far[i00 + dv + du]))
    return nearest_max >= z * (1 - VISIBILITY_TOLERANCE)


def forward_flow(depth: np.ndarray, instance: np.ndarray, depth_next: np.ndarray,
                 intrinsics: np.ndarray, intrinsics_next: np.ndarray, c2w: np.ndarray,
                 c2w_next: np.ndarray, object_poses: np.ndarray, object_poses_next: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optical flow (H, W, 2), its validity (H, W) and scene flow (H, W, 3) from frame t to t+1.

    Pixels without a surface or whose point is behind camera t+1 have flow 0 and are invalid.
    """
    height, width = depth.shape
    points = depth_to_world(depth, intrinsics, c2w)
    moved = move_points(points, instance, object_poses, object_poses_next)
    uv_next, z_next = project(apply_transform(invert_rigid(c2w_next), moved), intrinsics_next)
    has_surface = depth > 0
    in_front = z_next > 0
    uv_safe = np.where((has_surface & in_front)[..., None], uv_next, 0.0)
    inside = ((uv_safe[..., 0] >= -0.5) & (uv_safe[..., 0] < width - 0.5)
              & (uv_safe[..., 1] >= -0.5) & (uv_safe[..., 1] < height - 0.5))
    valid = has_surface & in_front & inside & _visible(depth_next, uv_safe, z_next)
    flow = np.where((has_surface & in_front)[..., None], uv_safe - pixel_grid(height, width), 0.0)
    scene_flow = np.where(has_surface[..., None], moved - points, 0.0)
    return flow.astype(np.float32), valid, scene_flow.astype(np.float32)
