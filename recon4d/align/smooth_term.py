"""Temporal smoothness of the trajectory (MonST3R's L_smooth, spec 2.2).

S = sum_t |R_rel - I|_F + lambda |t_rel| with (R_rel, t_rel) = T_t^-1 T_{t+1} over consecutive
frames (image index order). Adam differentiates `smooth_loss`; the fast solver takes
`smooth_quadratic`: the IRLS majoriser |x| <= |x|^2 / (2 |x0|) + |x0| / 2 of both norms, with
the analytic Jacobians of the relative pose under left perturbations (T_{t+1}'s step minus T_t's):
d vec(R_rel) = -[r_k]x R_t^T dw per column r_k, d t_rel = R_t^T (-[t_{t+1}]x dw + dv).
"""

from __future__ import annotations

import torch
from torch import Tensor

from recon4d.align.pose_terms import PoseQuadratic, pair_quadratic
from recon4d.geometry.rotations import skew

ROT_FLOOR = 1e-3  # radians-scale floor of |R_rel - I| in the IRLS weights


def relative_residuals(rot: Tensor, trans: Tensor, translation_weight: float
                       ) -> tuple[Tensor, Tensor]:
    """(N-1, 9) vec(R_rel - I) column by column and (N-1, 3) lambda t_rel."""
    rel = rot[:-1].transpose(1, 2) @ rot[1:]
    eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
    x = (rel - eye).transpose(1, 2).reshape(-1, 9)
    y = translation_weight * (rot[:-1].transpose(1, 2) @ (trans[1:] - trans[:-1])[..., None])
    return x, y[..., 0]


def smooth_loss(rot: Tensor, trans: Tensor, translation_weight: float) -> Tensor:
    """S (differentiable; a tiny floor keeps the gradient of |0| finite)."""
    x, y = relative_residuals(rot, trans, translation_weight)
    return ((x.square().sum(-1) + 1e-20).sqrt() + (y.square().sum(-1) + 1e-20).sqrt()).sum()


def smooth_quadratic(rot: Tensor, trans: Tensor, translation_weight: float, scale: float,
                     trans_floor: float) -> PoseQuadratic:
    """Model of `scale` x 2 x the IRLS majoriser of S at the poses (rot, trans), float64;
    `trans_floor` floors |lambda t_rel| in the weights (scene units)."""
    x, y = relative_residuals(rot, trans, translation_weight)
    n = rot.shape[0]
    rel = rot[:-1].transpose(1, 2) @ rot[1:]
    rt = rot[:-1].transpose(1, 2)
    jac = torch.zeros(n - 1, 12, 6, dtype=rot.dtype, device=rot.device)
    for k in range(3):
        jac[:, 3 * k:3 * k + 3, :3] = -skew(rel[:, :, k]) @ rt
    jac[:, 9:, :3] = -translation_weight * rt @ skew(trans[1:])
    jac[:, 9:, 3:] = translation_weight * rt
    res = torch.cat((x, y), dim=-1)
    w_rot = scale / x.norm(dim=-1).clamp(min=ROT_FLOOR)
    w_trans = scale / y.norm(dim=-1).clamp(min=trans_floor)
    weight = torch.cat((w_rot[:, None].expand(-1, 9), w_trans[:, None].expand(-1, 3)), dim=-1)
    moment = torch.einsum("pri,pr,prj->pij", jac, weight, jac)
    first = torch.einsum("pri,pr,pr->pi", jac, weight, res)
    pairs = torch.stack((torch.arange(n - 1), torch.arange(1, n)), dim=-1).to(rot.device)
    return pair_quadratic(pairs, moment, first, (weight * res.square()).sum(), rot, trans)
