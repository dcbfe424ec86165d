"""Small geometry helpers shared by the alignment code: rotations, pixel rays, rigid transforms."""

from __future__ import annotations

import torch
from torch import Tensor


def pixel_grid(height: int, width: int, dtype: torch.dtype = torch.float32,
               device: torch.device | str | None = None) -> Tensor:
    """(H, W, 2) integer pixel-centre coordinates (x = column, y = row)."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=dtype, device=device),
                            torch.arange(width, dtype=dtype, device=device), indexing="ij")
    return torch.stack((xs, ys), dim=-1)


def camera_rays(focals: Tensor, pps: Tensor, height: int, width: int) -> Tensor:
    """(N, H, W, 3) rays ((x - cx)/f, (y - cy)/f, 1): a point at depth D is D times its ray."""
    grid = pixel_grid(height, width, focals.dtype, focals.device)
    xy = (grid[None] - pps[:, None, None, :]) / focals[:, None, None, None]
    return torch.cat((xy, torch.ones_like(xy[..., :1])), dim=-1)


def transform_points(rot: Tensor, trans: Tensor, pts: Tensor,
                     scale: Tensor | None = None) -> Tensor:
    """Apply x -> scale * rot @ x + trans to (B, ..., 3) points with (B, 3, 3), (B, 3), (B,)."""
    shape = pts.shape
    flat = pts.reshape(shape[0], -1, 3)
    rot = rot.to(pts.dtype)
    if scale is not None:
        rot = rot * scale.to(pts.dtype)[:, None, None]
    out = torch.baddbmm(trans.to(pts.dtype)[:, None, :], flat, rot.transpose(1, 2))
    return out.reshape(shape)


def skew(v: Tensor) -> Tensor:
    """(..., 3, 3) cross-product matrices [v]x, so that [v]x @ w = v x w."""
    zero = torch.zeros_like(v[..., 0])
    x, y, z = v.unbind(-1)
    return torch.stack((zero, -z, y, z, zero, -x, -y, x, zero), dim=-1).reshape(*v.shape, 3)


def so3_exp(omega: Tensor) -> Tensor:
    """Rotation matrices exp([omega]x) (Rodrigues), stable near zero."""
    theta2 = (omega * omega).sum(-1, keepdim=True)[..., None]
    theta = theta2.sqrt()
    small = theta2 < 1e-12
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / torch.where(small, 1, theta))
    b = torch.where(small, 0.5 - theta2 / 24,
                    (1 - torch.cos(theta)) / torch.where(small, 1, theta2))
    k = skew(omega)
    eye = torch.eye(3, dtype=omega.dtype, device=omega.device).expand_as(k)
    return eye + a * k + b * (k @ k)


def quat_to_rotmat(quat: Tensor) -> Tensor:
    """Rotation matrices from (..., 4) xyzw quaternions (normalised first)."""
    x, y, z, w = torch.nn.functional.normalize(quat, dim=-1).unbind(-1)
    return torch.stack((
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ), dim=-1).reshape(*quat.shape[:-1], 3, 3)


def rotmat_to_quat(rot: Tensor) -> Tensor:
    """(..., 4) unit xyzw quaternions (w >= 0) from rotation matrices, stable for every angle."""
    m = rot
    diag = torch.stack((m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]), dim=-1)
    trace = diag.sum(-1)
    # four candidate (unnormalised) quaternions; the one with the largest norm is well conditioned
    cands = torch.stack((
        torch.stack((1 + 2 * diag[..., 0] - trace, m[..., 0, 1] + m[..., 1, 0],
                     m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] - m[..., 1, 2]), -1),
        torch.stack((m[..., 0, 1] + m[..., 1, 0], 1 + 2 * diag[..., 1] - trace,
                     m[..., 1, 2] + m[..., 2, 1], m[..., 0, 2] - m[..., 2, 0]), -1),
        torch.stack((m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                     1 + 2 * diag[..., 2] - trace, m[..., 1, 0] - m[..., 0, 1]), -1),
        torch.stack((m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                     m[..., 1, 0] - m[..., 0, 1], 1 + trace), -1),
    ), dim=-2)
    best = cands.norm(dim=-1).argmax(-1)
    quat = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    quat = torch.nn.functional.normalize(quat, dim=-1)
    return torch.where(quat[..., 3:] < 0, -quat, quat)


def signed_log1p(x: Tensor) -> Tensor:
    """sign(x) * log(1 + |x|): the storage of translations in the reference parameterisation."""
    return torch.sign(x) * torch.log1p(x.abs())


def signed_expm1(x: Tensor) -> Tensor:
    """Inverse of `signed_log1p`."""
    return torch.sign(x) * torch.expm1(x.abs())
