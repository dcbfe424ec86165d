"""Optical flow induced by camera motion alone (what a static scene's pixels would do).

Motion segmentation (MonST3R-style) compares it with the observed flow: where they disagree,
the scene moves.
"""

from __future__ import annotations

from recon4d.geometry.backend import Array, as_float, namespace
from recon4d.geometry.cameras import pixel_grid, project, unproject_depth
from recon4d.geometry.transforms import apply_transform


def induced_flow(depth: Array, intrinsics: Array, relative_pose: Array,
                 intrinsics_next: Array | None = None) -> Array:
    """(..., H, W, 2) flow from image i to image j of a static scene with depth (..., H, W) in i.

    `relative_pose` (..., 4, 4) maps camera-i to camera-j coordinates, inv(pose_j) @ pose_i for
    camera-to-world poses; `intrinsics_next` defaults to `intrinsics`. Pixels without depth
    (<= 0) or whose point is not in front of camera j are NaN.
    """
    xp = namespace(depth, intrinsics, relative_pose, intrinsics_next)
    depth = as_float(xp, depth)
    k_next = intrinsics if intrinsics_next is None else intrinsics_next
    points = apply_transform(as_float(xp, relative_pose, like=depth),
                             unproject_depth(depth, intrinsics))
    uv, z = project(points, as_float(xp, k_next, like=depth))
    flow = uv - pixel_grid(*depth.shape[-2:], like=depth)
    valid = (depth > 0) & (z > 0)
    return xp.where(valid[..., None], flow, float("nan"))
