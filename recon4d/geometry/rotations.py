"""Rotations: cross-product matrices, the SO(3) exponential, axis-angle and rotation angles."""

from __future__ import annotations

from recon4d.geometry.backend import Array, as_float, identity, namespace


def skew(vectors: Array) -> Array:
    """(..., 3, 3) cross-product matrices [v]x of (..., 3) vectors: [v]x @ w = v x w."""
    xp = namespace(vectors)
    vectors = as_float(xp, vectors)
    x, y, z = vectors[..., 0], vectors[..., 1], vectors[..., 2]
    zero = xp.zeros_like(x)
    entries = (zero, -z, y, z, zero, -x, -y, x, zero)
    return xp.stack(entries, axis=-1).reshape(*vectors.shape, 3)


def so3_exp(omega: Array) -> Array:
    """Rotation matrices exp([omega]x) of (..., 3) rotation vectors (Rodrigues), stable near 0."""
    xp = namespace(omega)
    omega = as_float(xp, omega)
    theta2 = (omega * omega).sum(-1)[..., None, None]
    theta = xp.sqrt(theta2)
    small = theta2 < 1e-12
    a = xp.where(small, 1 - theta2 / 6, xp.sin(theta) / xp.where(small, 1, theta))
    b = xp.where(small, 0.5 - theta2 / 24, (1 - xp.cos(theta)) / xp.where(small, 1, theta2))
    k = skew(omega)
    return identity(xp, 3, like=k) + a * k + b * (k @ k)


def axis_angle(axis: Array, angle: Array) -> Array:
    """Rotation matrices (..., 3, 3) about a (3,) `axis` (normalised here) by `angle` (...,) rad."""
    xp = namespace(axis, angle)
    axis = as_float(xp, axis)
    angle = as_float(xp, angle, like=axis)
    unit = axis / xp.linalg.norm(axis, axis=-1, keepdims=True)
    return so3_exp(unit * angle[..., None])


def rotation_angle(rot: Array) -> Array:
    """Angle in radians (...) of (..., 3, 3) rotation matrices, accurate near 0 and near pi."""
    xp = namespace(rot)
    rot = as_float(xp, rot)
    axis = xp.stack((rot[..., 2, 1] - rot[..., 1, 2], rot[..., 0, 2] - rot[..., 2, 0],
                     rot[..., 1, 0] - rot[..., 0, 1]), axis=-1)
    cos = (rot[..., 0, 0] + rot[..., 1, 1] + rot[..., 2, 2] - 1) / 2
    return xp.arctan2(xp.linalg.norm(axis, axis=-1) / 2, cos)
