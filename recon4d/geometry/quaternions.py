"""Unit quaternions <-> rotation matrices, in the order x, y, z, w (scalar last) everywhere.

This is the order of TUM trajectories and scipy's Rotation; COLMAP's w, x, y, z is a reindexing
at its writer. `matrix_to_quat` returns the representative with w >= 0.
"""

from __future__ import annotations

from recon4d.geometry.backend import Array, as_float, namespace, take_along


def quat_to_matrix(quat: Array) -> Array:
    """(..., 3, 3) rotation matrices of (..., 4) x, y, z, w quaternions (normalised here)."""
    xp = namespace(quat)
    quat = as_float(xp, quat)
    quat = quat / xp.linalg.norm(quat, axis=-1, keepdims=True)
    x, y, z, w = (quat[..., k] for k in range(4))
    entries = (1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
               2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
               2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y))
    return xp.stack(entries, axis=-1).reshape(*quat.shape[:-1], 3, 3)


def matrix_to_quat(rot: Array) -> Array:
    """(..., 4) unit x, y, z, w quaternions (w >= 0) of (..., 3, 3) rotation matrices.

    Each of the four components gives a candidate 4 q_k q; the one with the largest norm is
    well conditioned, so every angle (including 180 degrees) is accurate.
    """
    xp = namespace(rot)
    m = as_float(xp, rot)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    trace = m00 + m11 + m22
    sx, sy, sz = (m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                  m[..., 1, 0] - m[..., 0, 1])
    xy, xz, yz = (m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0],
                  m[..., 1, 2] + m[..., 2, 1])
    candidates = xp.stack((
        xp.stack((1 + 2 * m00 - trace, xy, xz, sx), axis=-1),
        xp.stack((xy, 1 + 2 * m11 - trace, yz, sy), axis=-1),
        xp.stack((xz, yz, 1 + 2 * m22 - trace, sz), axis=-1),
        xp.stack((sx, sy, sz, 1 + trace), axis=-1),
    ), axis=-2)
    best = xp.argmax(xp.linalg.norm(candidates, axis=-1), axis=-1)
    quat = take_along(xp, candidates, best[..., None, None], axis=-2)[..., 0, :]
    quat = quat / xp.linalg.norm(quat, axis=-1, keepdims=True)
    return xp.where(quat[..., 3:] < 0, -quat, quat)
