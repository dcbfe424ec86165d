"""Similarity transforms Sim(3) as 4x4 matrices, with their Lie algebra (torch only).

Conventions (used by the MASt3R-style SLAM in `recon4d.slam`):

- a Sim(3) is a (..., 4, 4) matrix T = [sR t; 0 1] acting as x -> s R x + t (`sim3_act`);
  leading dimensions are batch dimensions;
- tangent vectors are (..., 7) in the order [translation (3), rotation (3), log-scale (1)]:
  xi = [tau, omega, sigma] is the algebra matrix [[sigma I + [omega]x, tau], [0, 0]];
- `sim3_exp` is the group exponential of that matrix and `sim3_log` its inverse (rotation
  angle below pi); perturbations are applied on the LEFT: T <- sim3_exp(delta) @ T;
- `sim3_adjoint(T)` (..., 7, 7) satisfies T @ exp(xi) = exp(Ad(T) xi) @ T.
"""

from __future__ import annotations

import torch
from torch import Tensor

from recon4d.geometry.quaternions import matrix_to_quat
from recon4d.geometry.rotations import skew
from recon4d.geometry.transforms import apply_transform, make_rigid

TRANS, ROT, LOG_SCALE = slice(0, 3), slice(3, 6), 6
DOF = 7


def _algebra_block(omega: Tensor, sigma: Tensor) -> Tensor:
    """(..., 3, 3) linear part sigma I + [omega]x of the algebra matrix."""
    eye = torch.eye(3, dtype=omega.dtype, device=omega.device)
    return sigma[..., None, None] * eye + skew(omega)


def sim3_exp(xi: Tensor) -> Tensor:
    """(..., 4, 4) Sim(3) matrices exp(xi) of (..., 7) tangent vectors [tau, omega, sigma]."""
    top = torch.cat((_algebra_block(xi[..., ROT], xi[..., LOG_SCALE]), xi[..., TRANS, None]), -1)
    algebra = torch.cat((top, torch.zeros_like(top[..., :1, :])), -2)
    return torch.linalg.matrix_exp(algebra)


def _so3_log(rot: Tensor) -> Tensor:
    """(..., 3) rotation vectors of (..., 3, 3) rotations, through the unit quaternion (w >= 0),
    accurate at every angle up to pi."""
    quat = matrix_to_quat(rot)
    vec, w = quat[..., :3], quat[..., 3:]
    norm = vec.norm(dim=-1, keepdim=True)
    small = norm < 1e-8
    factor = torch.where(small, 2 / w, 2 * torch.atan2(norm, w) / torch.where(small, 1, norm))
    return factor * vec


def sim3_scale(T: Tensor) -> Tensor:
    """(...) scales s of (..., 4, 4) Sim(3) matrices: the RMS column norm of sR."""
    return (T[..., :3, :3].square().sum((-1, -2)) / 3).sqrt()


def sim3_log(T: Tensor) -> Tensor:
    """(..., 7) tangent vectors [tau, omega, sigma] with sim3_exp(xi) = T (rotation angle < pi).

    The translation part solves W tau = t, W = integral_0^1 exp(u (sigma I + [omega]x)) du,
    read from the exponential of the 6x6 block matrix [[A, I], [0, 0]].
    """
    scale = sim3_scale(T)
    omega = _so3_log(T[..., :3, :3] / scale[..., None, None])
    sigma = scale.log()
    block = _algebra_block(omega, sigma)
    eye = torch.eye(3, dtype=T.dtype, device=T.device).expand_as(block)
    big = torch.cat((torch.cat((block, eye), -1), torch.zeros_like(torch.cat((block, eye), -1))),
                    -2)
    w_matrix = torch.linalg.matrix_exp(big)[..., :3, 3:]
    tau = torch.linalg.solve(w_matrix, T[..., :3, 3:])[..., 0]
    return torch.cat((tau, omega, sigma[..., None]), -1)


def sim3_inverse(T: Tensor) -> Tensor:
    """Exact inverse [R^T / s, -R^T t / s; 0 1] of (..., 4, 4) Sim(3) matrices."""
    scale2 = sim3_scale(T).square()[..., None, None]
    inv_linear = T[..., :3, :3].transpose(-1, -2) / scale2
    return make_rigid(inv_linear, -(inv_linear @ T[..., :3, 3:])[..., 0])


def sim3_act(T: Tensor, points: Tensor) -> Tensor:
    """s R x + t for (*B, 4, 4) transforms and (*B, *P, 3) points (batch rule of
    `recon4d.geometry.transforms.apply_transform`)."""
    return apply_transform(T, points)


def sim3_adjoint(T: Tensor) -> Tensor:
    """(..., 7, 7) adjoint [[sR, [t]x R, -t], [0, R, 0], [0, 0, 1]] of (..., 4, 4) Sim(3)."""
    scale = sim3_scale(T)
    rot = T[..., :3, :3] / scale[..., None, None]
    t = T[..., :3, 3]
    adj = torch.zeros((*T.shape[:-2], DOF, DOF), dtype=T.dtype, device=T.device)
    adj[..., TRANS, TRANS] = T[..., :3, :3]
    adj[..., TRANS, ROT] = skew(t) @ rot
    adj[..., TRANS, LOG_SCALE] = -t
    adj[..., ROT, ROT] = rot
    adj[..., LOG_SCALE, LOG_SCALE] = 1.0
    return adj


def sim3_to_rigid(T: Tensor) -> tuple[Tensor, Tensor]:
    """(rigid (..., 4, 4) [R t; 0 1], scale (...)) of Sim(3) matrices: the camera pose with the
    scale of its points taken out (the translation is kept)."""
    scale = sim3_scale(T)
    return make_rigid(T[..., :3, :3] / scale[..., None, None], T[..., :3, 3]), scale


def sim3_from_rigid(pose: Tensor, scale: Tensor | float = 1.0) -> Tensor:
    """(..., 4, 4) Sim(3) [s R t; 0 1] of rigid poses and scales (...) (inverse of
    `sim3_to_rigid`)."""
    scale = torch.as_tensor(scale, dtype=pose.dtype, device=pose.device)
    return make_rigid(pose[..., :3, :3] * scale[..., None, None], pose[..., :3, 3])


def nearest_sim3(T: Tensor) -> Tensor:
    """The Sim(3) [s R t; 0 1] nearest to (..., 4, 4) matrices: R from the SVD of the linear part
    (a reflection flipped on its least singular direction), s the mean singular value, t kept.
    Poses composed frame after frame drift off Sim(3) by rounding, and `sim3_inverse` /
    `sim3_log` assume [s R t] exactly, so the error would compound."""
    u, sing, vh = torch.linalg.svd(T[..., :3, :3])
    flip = torch.ones_like(sing)
    flip[..., 2] = torch.sign(torch.linalg.det(u @ vh))
    linear = sing.mean(-1)[..., None, None] * (u * flip[..., None, :]) @ vh
    return make_rigid(linear, T[..., :3, 3])
