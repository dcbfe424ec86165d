"""Rigid and similarity transforms: 4x4 matrices, their exact inverse, and applying them.

Batch rule of the `apply_*` functions: the transform's leading dimensions (*B) are the leading
dimensions of the points (*B, *P, 3); a single transform applies to points of any shape.
"""

from __future__ import annotations

from recon4d.geometry.backend import Array, as_float, namespace


def make_rigid(rotation: Array, translation: Array) -> Array:
    """(..., 4, 4) homogeneous matrices from rotations (..., 3, 3) and translations (..., 3)."""
    xp = namespace(rotation, translation)
    rotation = as_float(xp, rotation)
    translation = as_float(xp, translation, like=rotation)
    top = xp.concatenate((rotation, translation[..., None]), axis=-1)
    bottom = xp.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1.0
    return xp.concatenate((top, bottom), axis=-2)


def invert_rigid(poses: Array) -> Array:
    """Inverse of (..., 4, 4) rigid transforms through R^T (exact; no general matrix inverse)."""
    xp = namespace(poses)
    poses = as_float(xp, poses)
    rot_t = xp.swapaxes(poses[..., :3, :3], -1, -2)
    return make_rigid(rot_t, -(rot_t @ poses[..., :3, 3:4])[..., 0])


def apply_similarity(rotation: Array, translation: Array, points: Array,
                     scale: Array | None = None) -> Array:
    """x -> scale * rotation @ x + translation: points (*B, *P, 3), transform (*B, 3, 3), (*B, 3),
    scale (*B,).

    Tensors: the result has the points' dtype and device (the transform is cast to them), so
    float32 clouds stay float32 under a float64 transform. numpy: float64.
    """
    xp = namespace(rotation, translation, points)
    points = as_float(xp, points)
    rotation = as_float(xp, rotation, like=points)
    translation = as_float(xp, translation, like=rotation)
    if scale is not None:
        rotation = rotation * as_float(xp, scale, like=rotation)[..., None, None]
    return apply_matrix(rotation, points, translation)


def apply_matrix(matrix: Array, points: Array, offset: Array | None = None) -> Array:
    """x -> matrix @ x (+ offset) for (*B, 3, 3) matrices and (*B, *P, 3) points (same kind)."""
    out = points.reshape(*matrix.shape[:-2], -1, 3) @ matrix.swapaxes(-1, -2)
    if offset is not None:
        out = out + offset[..., None, :]
    return out.reshape(points.shape)


def apply_transform(transform: Array, points: Array) -> Array:
    """Apply (*B, 4, 4) rigid or similarity matrices to (*B, *P, 3) points."""
    return apply_similarity(transform[..., :3, :3], transform[..., :3, 3], points)
