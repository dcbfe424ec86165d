"""Per-image fit of pose, focal and depth map to weighted target world points.

For image n with targets Y(u) and weights W(u) the cost is sum W |R (D(u) ray_f(u)) + t - Y(u)|^2.
The depth of each pixel is eliminated (Schur complement of its 1x1 block), so each Gauss-Newton
step solves a 7x7 system per image (rotation, translation, log focal), vectorised over images;
the depths are then re-solved in closed form along the new rays.
"""

from __future__ import annotations

import torch
from torch import Tensor

from recon4d.align.focal import FOCAL_RANGE, focal_base
from recon4d.geometry.cameras import camera_rays, intrinsics_matrix
from recon4d.geometry.rotations import skew, so3_exp

GN_ITERS = 2

# One image's parameter step (7 values): rotation increment w (R <- R exp([w]x), camera frame),
# translation increment v (t <- t + R v, camera frame), log focal increment (f <- f exp(.)).
ROT, TRANS, LOG_FOCAL = slice(0, 3), slice(3, 6), 6
POSE = slice(0, 6)
NUM_PARAMS = 7
# Columns of the per-pixel features whose weighted moment matrix holds every sum needed: target
# q (3), focal Jacobian j_f (its 2 nonzero components), residual rho (3), c = J^T r^ (7, in
# parameter order) and a constant 1.
F_Q, F_JF, F_RHO, F_C, F_ONE = slice(0, 3), slice(3, 5), slice(5, 8), slice(8, 15), 15


def _cam_targets(rot: Tensor, trans: Tensor, targets: Tensor) -> Tensor:
    """Targets expressed in each camera frame, (n, HW, 3)."""
    return (targets - trans.float()[:, None]) @ rot.float()


def _best_depth(rays: Tensor, q: Tensor, weight: Tensor, depth: Tensor, min_depth: Tensor
                ) -> Tensor:
    """Closed-form depth along each ray (kept where the pixel has no weight)."""
    d = (rays * q).sum(-1) / rays.square().sum(-1)
    return torch.where(weight > 0, torch.maximum(d, min_depth[:, None]), depth)


def _cost(rays: Tensor, q: Tensor, weight: Tensor, depth: Tensor) -> Tensor:
    return (weight * (depth[..., None] * rays - q).square().sum(-1)).double().sum(1)


def _cross_sum(m: Tensor) -> Tensor:
    """sum w a x b from the (n, 3, 3) moment matrix m = sum w a b^T."""
    return torch.stack((m[:, 1, 2] - m[:, 2, 1], m[:, 2, 0] - m[:, 0, 2],
                        m[:, 0, 1] - m[:, 1, 0]), dim=-1)


def normal_equations(q: Tensor, rays: Tensor, depth: Tensor, weight: Tensor
                     ) -> tuple[Tensor, Tensor]:
    """Reduced 7x7 Gauss-Newton system (H, g) per image, depth eliminated, in float64.

    Per pixel with residual rho = D r - q, Jacobian J (3x7) = [-[q]x, I, j_f] (columns ROT,
    TRANS, LOG_FOCAL) and unit ray r^, the reduced normal matrix is J^T (I - r^ r^T) J =
    J^T J - c c^T with c = J^T r^ = (q x r^, r^, r^ . j_f), and g = J^T rho (half the gradient
    of the cost at fixed depths). Every sum needed is an entry of one weighted moment matrix of
    the per-pixel features (columns F_*), computed by a single batched matrix product.
    """
    n = q.shape[0]
    rho = depth[..., None] * rays - q
    rhat = rays / rays.norm(dim=-1, keepdim=True)
    j_f = -depth[..., None] * rays[..., :2]  # d residual / d log f (third component 0)
    c_f = (rhat[..., :2] * j_f).sum(-1, keepdim=True)
    feats = torch.cat((q, j_f, rho, torch.linalg.cross(q, rhat), rhat, c_f,
                       torch.ones_like(c_f)), -1)
    mom = ((feats * weight[..., None]).transpose(1, 2) @ feats).double()
    qq, q1, w1 = mom[:, F_Q, F_Q], mom[:, F_Q, F_ONE], mom[:, F_ONE, F_ONE]
    pad = torch.zeros_like(q1[:, :1])  # the third component of j_f
    qf = torch.cat((mom[:, F_Q, F_JF], pad[..., None].expand(-1, 3, 1)), -1)  # sum w q j_f^T
    jf1 = torch.cat((mom[:, F_JF, F_ONE], pad), -1)  # sum w j_f
    eye = torch.eye(3, dtype=torch.float64, device=q.device)
    hess = torch.zeros(n, NUM_PARAMS, NUM_PARAMS, dtype=torch.float64, device=q.device)
    hess[:, ROT, ROT] = _trace(qq)[:, None, None] * eye - qq
    hess[:, ROT, TRANS] = skew(q1)
    hess[:, TRANS, ROT] = skew(q1).transpose(1, 2)
    hess[:, ROT, LOG_FOCAL] = hess[:, LOG_FOCAL, ROT] = _cross_sum(qf)
    hess[:, TRANS, TRANS] = w1[:, None, None] * eye
    hess[:, TRANS, LOG_FOCAL] = hess[:, LOG_FOCAL, TRANS] = jf1
    hess[:, LOG_FOCAL, LOG_FOCAL] = _trace(mom[:, F_JF, F_JF])
    hess -= mom[:, F_C, F_C]
    grad = torch.empty(n, NUM_PARAMS, dtype=torch.float64, device=q.device)
    grad[:, ROT] = _cross_sum(mom[:, F_Q, F_RHO])
    grad[:, TRANS] = mom[:, F_RHO, F_ONE]
    grad[:, LOG_FOCAL] = _trace(mom[:, F_JF, F_RHO])  # sum w j_f . rho (x, y)
    return hess, grad


def _trace(m: Tensor) -> Tensor:
    """Sum of the main diagonal of each (n, a, b) matrix."""
    return torch.diagonal(m, dim1=-2, dim2=-1).sum(-1)


def fit_cameras(targets: Tensor, weight: Tensor, rot: Tensor, trans: Tensor, focals: Tensor,
                pps: Tensor, depths: Tensor, fix_pose: Tensor, fix_focal: bool,
                iters: int = GN_ITERS) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Levenberg-Marquardt per image; returns (rot, trans, focals, depths), float64/32 as given.

    `targets` (n, H*W, 3) world points, `weight` (n, H*W), `fix_pose` (n,) bool.
    """
    n, h, w = depths.shape
    depth = depths.reshape(n, -1)
    min_depth = 1e-3 * depth.median(dim=1).values
    rays = camera_rays(intrinsics_matrix(focals.float(), pps.float()), h, w).flatten(1, 2)
    q = _cam_targets(rot, trans, targets)
    depth = _best_depth(rays, q, weight, depth, min_depth)
    cost = _cost(rays, q, weight, depth)
    free = torch.ones(n, NUM_PARAMS, dtype=torch.float64, device=rot.device)
    free[fix_pose, POSE] = 0
    if fix_focal:
        free[:, LOG_FOCAL] = 0
    lam = torch.full((n,), 1e-4, dtype=torch.float64, device=rot.device)
    f_min, f_max = (r * focal_base(h, w) for r in FOCAL_RANGE)
    for _ in range(iters):
        hess, grad = normal_equations(q, rays, depth, weight)
        hess = hess * free[:, :, None] * free[:, None, :] + torch.diag_embed(1 - free)
        grad = grad * free
        damp = torch.diagonal(hess, dim1=-2, dim2=-1)
        step = -torch.linalg.solve(hess + torch.diag_embed(damp * lam[:, None] + 1e-12), grad)
        new_rot = rot @ so3_exp(step[:, ROT])
        new_trans = trans + (rot @ step[:, TRANS, None])[..., 0]
        new_focals = (focals * torch.exp(step[:, LOG_FOCAL])).clamp(f_min, f_max)
        new_rays = rays if torch.equal(new_focals, focals) else camera_rays(  # fixed focals
            intrinsics_matrix(new_focals.float(), pps.float()), h, w).flatten(1, 2)
        new_q = _cam_targets(new_rot, new_trans, targets)
        new_depth = _best_depth(new_rays, new_q, weight, depth, min_depth)
        new_cost = _cost(new_rays, new_q, weight, new_depth)
        ok = new_cost <= cost
        rot = torch.where(ok[:, None, None], new_rot, rot)
        trans = torch.where(ok[:, None], new_trans, trans)
        focals = torch.where(ok, new_focals, focals)
        okp = ok[:, None].to(q.device)
        rays = torch.where(okp[..., None], new_rays, rays)
        q = torch.where(okp[..., None], new_q, q)
        depth = torch.where(okp, new_depth, depth)
        cost = torch.where(ok, new_cost, cost)
        lam = torch.where(ok, (lam / 10).clamp(min=1e-12), lam * 10)
    return rot, trans, focals, depth.reshape(n, h, w)


def fit_shared_camera(targets: Tensor, weight: Tensor, rot: Tensor, trans: Tensor,
                      focal: Tensor, pps: Tensor, depths: Tensor, fix_pose: Tensor,
                      per_chunk: int, iters: int = GN_ITERS
                      ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Every image's pose and one focal for all (a video's camera), fitted jointly: returns
    (rot, trans, focals, depths).

    Each image's 7x7 system of `normal_equations` (depths eliminated) couples its pose to the
    focal. Eliminating the 6x6 pose blocks leaves one scalar equation in the log focal; back-
    substitution gives every pose step. One Levenberg-Marquardt damping on the total cost (a
    focal fitted with the poses frozen crawls: pose and focal errors trade off along the optical
    axes). Images are visited in chunks of `per_chunk` (memory of one chunk).
    """
    n, h, w = depths.shape
    chunks = [slice(s, s + per_chunk) for s in range(0, n, per_chunk)]
    min_depth = 1e-3 * depths.reshape(n, -1).median(dim=1).values
    f_min, f_max = (r * focal_base(h, w) for r in FOCAL_RANGE)
    free = torch.ones(n, NUM_PARAMS, dtype=torch.float64, device=rot.device)
    free[fix_pose, POSE] = 0

    def evaluate(r: Tensor, t: Tensor, f: Tensor
                 ) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
        """Total cost, per-image (H, g) and the best depths at poses (r, t) and focal f."""
        cost = torch.zeros((), dtype=torch.float64, device=rot.device)
        systems, best = [], []
        for sl in chunks:
            k = len(range(n)[sl])
            rays = camera_rays(intrinsics_matrix(f.float().expand(k), pps[sl].float()), h, w)
            rays = rays.flatten(1, 2)
            q = _cam_targets(r[sl], t[sl], targets[sl])
            depth = _best_depth(rays, q, weight[sl], depths[sl].reshape(k, -1), min_depth[sl])
            cost = cost + _cost(rays, q, weight[sl], depth).sum()
            systems.append(normal_equations(q, rays, depth, weight[sl]))
            best.append(depth)
        hess = torch.cat([sys[0] for sys in systems]) * free[:, :, None] * free[:, None, :]
        return cost, hess + torch.diag_embed(1 - free), torch.cat([sys[1] for sys in systems]
                                                                  ) * free, best

    focal = focal.reshape(-1)[:1].double()
    lam = 1e-4
    cost, hess, grad, best = evaluate(rot, trans, focal)
    for _ in range(iters):
        damped = hess + torch.diag_embed(torch.diagonal(hess, dim1=-2, dim2=-1) * lam + 1e-12)
        pose_hess, cross = damped[:, POSE, POSE], damped[:, POSE, LOG_FOCAL]
        solved = torch.linalg.solve(pose_hess, torch.stack((cross, grad[:, POSE]), dim=-1))
        reduced = damped[:, LOG_FOCAL, LOG_FOCAL].sum() - (cross * solved[..., 0]).sum()
        step_f = -(grad[:, LOG_FOCAL].sum() - (cross * solved[..., 1]).sum()) / reduced
        step = -(solved[..., 1] + solved[..., 0] * step_f)
        new_rot = rot @ so3_exp(step[:, ROT])
        new_trans = trans + (rot @ step[:, TRANS, None])[..., 0]
        new_focal = (focal * torch.exp(step_f)).clamp(f_min, f_max)
        new = evaluate(new_rot, new_trans, new_focal)
        if new[0] <= cost:
            rot, trans, focal = new_rot, new_trans, new_focal
            cost, hess, grad, best = new
            lam = max(lam / 10, 1e-12)
        else:
            lam *= 10
    return rot, trans, focal.expand(n).clone(), torch.cat(best).reshape(n, h, w)
