"""Camera poses and edge similarities solved jointly with the depth maps held fixed.

With camera-frame points q (depth maps fixed) and pair points p, the weighted squared cost
sum w |R_n q + t_n - s_e R_e p - t_e|^2 of one (edge, side) depends on the data only through the
weight, mean and scatter of z = (q, p). Each such term is replaced by 7 virtual residuals that
reproduce it exactly, so Levenberg-Marquardt on all poses at once (edge similarities eliminated
by their closed-form optimum and a Schur complement) costs nothing per pixel. The camera
system couples two cameras only through an edge: it is kept block-sparse and, for video graphs,
solved block-banded (`block_system`), in memory linear in the number of frames.

Optionally every camera also gets a log scale sigma_n, its points becoming exp(sigma_n) R_n q +
t_n (`solve_camera_similarities`): one step then rescales a whole depth map, which a scale
error shared by many frames (a window of a long video) needs. The moments, residuals and edge
similarities take the linear map exp(sigma_n) R_n in place of R_n: every term is linear in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from recon4d.align.block_system import BlockSystem
from recon4d.geometry.rotations import skew, so3_exp
from recon4d.geometry.umeyama import PairMoments, umeyama_from_moments

if TYPE_CHECKING:
    from recon4d.align.pose_terms import PoseQuadratic

LM_ITERS = 15
EDGE_CHUNK = 256  # edges per batch of the normal equations (bounds their temporaries)

# z = (q, p): a camera-frame point of the image and the pair's point, side by side.
Z_Q, Z_P = slice(0, 3), slice(3, 6)
# One camera's step (6): rotation w and translation v applied on the left in the world frame,
# R <- exp([w]x) R, t <- exp([w]x) t + v.
ROT, TRANS = slice(0, 3), slice(3, 6)
POSE_SIZE = 6
# With camera scales, one camera's step (7) is a similarity on the left like an edge's:
# x <- exp(sigma) exp([w]x) x + v for its world points x (ROT, TRANS, then CAM_LOG_SCALE).
CAM_LOG_SCALE, CAM_SIM_SIZE = 6, 7
# One edge similarity's step (7), also on the left: rotation, translation, log scale, so that
# the pair side s R p + t becomes exp(sigma) exp([w]x) (s R p + t) + v.
SIM_ROT, SIM_TRANS, LOG_SCALE = slice(0, 3), slice(3, 6), 6
SIM_SIZE = 7


@dataclass
class TermMoments:
    """Per edge and side (E, 2): weight, mean (6) and centred scatter (6, 6) of z = (q, p)."""

    weight: Tensor
    mean: Tensor
    scatter: Tensor


@dataclass
class VirtualResiduals:
    """Virtual residuals r = R_n a + tau t_n - s_e R_e b - tau t_e, (E, 2, 7, 3) and (E, 2, 7)."""

    a: Tensor
    b: Tensor
    tau: Tensor


def virtual_residuals(m: TermMoments) -> VirtualResiduals:
    """The 7 virtual residuals per term: the mean one and one per scatter eigen-direction."""
    evals, evecs = torch.linalg.eigh(m.scatter)
    cols = (evecs * evals.clamp(min=0).sqrt()[..., None, :]).transpose(-1, -2)  # (E, 2, 6, 6)
    sw = m.weight.sqrt()
    first = sw[..., None] * m.mean
    a = torch.cat((first[..., None, Z_Q], cols[..., Z_Q]), dim=-2)
    b = torch.cat((first[..., None, Z_P], cols[..., Z_P]), dim=-2)
    tau = torch.cat((sw[..., None], torch.zeros_like(cols[..., 0])), dim=-1)
    return VirtualResiduals(a, b, tau)


def edge_similarities(m: TermMoments, edges: Tensor, rot: Tensor, trans: Tensor,
                      scale_pull: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """Optimal similarity of every edge given the camera poses (weighted Umeyama on moments);
    `rot` may be any camera linear maps (scaled rotations).

    With `scale_pull` mu > 0 each edge minimises sum w |y - s R p - t|^2 - mu log s instead:
    same rotation, scale s = (B + sqrt(B^2 + 2 A mu)) / (2 A), A = sum w |p - mean p|^2,
    B = sum w (y - mean y) . R (p - mean p).
    """
    rn, tn = rot[edges], trans[edges]  # (E, 2, 3, 3), (E, 2, 3)
    mu_q, mu_p = m.mean[..., Z_Q], m.mean[..., Z_P]
    mu_y = (rn @ mu_q[..., None])[..., 0] + tn
    wk = m.weight
    total = wk.sum(1)
    safe = total.clamp(min=1e-300)[:, None]
    mp = (wk[..., None] * mu_p).sum(1) / safe
    my = (wk[..., None] * mu_y).sum(1) / safe
    dp, dy = mu_p - mp[:, None], mu_y - my[:, None]
    cross = (rn @ m.scatter[..., Z_Q, Z_P]).sum(1) + torch.einsum("ek,eki,ekj->eij", wk, dy, dp)
    var = (torch.diagonal(m.scatter[..., Z_P, Z_P], dim1=-2, dim2=-1).sum(-1)
           + wk * dp.square().sum(-1)).sum(1)
    scale, srot, strans = umeyama_from_moments(PairMoments(total, mp, my, cross, var))
    if scale_pull > 0:
        b = (srot * cross).sum((-1, -2))
        pulled = (b + torch.sqrt(b.square() + 2 * var * scale_pull)) / (2 * var.clamp(min=1e-300))
        scale = torch.where(var > 1e-300, pulled, scale)
        strans = my - scale[:, None] * (srot @ mp[..., None])[..., 0]
    return scale, srot, strans


def _residuals(v: VirtualResiduals, edges: Tensor, rot: Tensor, trans: Tensor,
               sim: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """(a, b, r): world-side, pair-side and residual vectors, each (E, 2, 7, 3)."""
    scale, srot, strans = sim
    a = v.a @ rot[edges].transpose(-1, -2) + v.tau[..., None] * trans[edges][:, :, None]
    b = (scale[:, None, None, None] * v.b @ srot[:, None].transpose(-1, -2)
         + v.tau[..., None] * strans[:, None, None])
    return a, b, a - b


def reduced_system(v: VirtualResiduals, edges: Tensor, n_images: int, rot: Tensor, trans: Tensor,
                    sim: tuple[Tensor, Tensor, Tensor], scale_pull: float,
                    camera_scale: bool = False) -> tuple[BlockSystem, Tensor]:
    """Gauss-Newton normal equations (H, g) in the 6N pose steps (POSE_SIZE per camera, camera
    by camera; H block-sparse: the edges' camera pairs), with the edge similarity steps
    eliminated by a Schur complement. g is half the gradient of the cost; -mu log s adds
    -mu / 2 to the LOG_SCALE entry. With `camera_scale`, `rot` holds the maps exp(sigma_n) R_n
    and the steps are 7N (CAM_SIM_SIZE per camera). Edges are taken EDGE_CHUNK at a time."""
    size = CAM_SIM_SIZE if camera_scale else POSE_SIZE
    dtype = torch.promote_types(v.a.dtype, rot.dtype)
    hess = BlockSystem.zeros(n_images, edges[:, 0], edges[:, 1],
                             rot.new_zeros(size, size, dtype=dtype))
    grad = rot.new_zeros(n_images, size, dtype=dtype)
    for start in range(0, len(edges), EDGE_CHUNK):
        sl = slice(start, start + EDGE_CHUNK)
        chunk = VirtualResiduals(v.a[sl], v.b[sl], v.tau[sl])
        h_tt, coupling, g = _edge_blocks(chunk, edges[sl], rot, trans,
                                         tuple(x[sl] for x in sim), scale_pull, camera_scale)
        e = edges[sl]
        rows = e[:, :, None].expand(-1, 2, 2).reshape(-1)
        cols = e[:, None, :].expand(-1, 2, 2).reshape(-1)
        hess.add_(torch.cat((rows, e.reshape(-1))), torch.cat((cols, e.reshape(-1))),
                  torch.cat((-coupling.reshape(-1, size, size), h_tt.reshape(-1, size, size))))
        grad.index_add_(0, e.reshape(-1), g.reshape(-1, size))
    return hess, grad.reshape(-1)


def _edge_blocks(v: VirtualResiduals, edges: Tensor, rot: Tensor, trans: Tensor,
                 sim: tuple[Tensor, Tensor, Tensor], scale_pull: float, camera_scale: bool
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """Per edge, with its similarity step eliminated: the camera blocks H_tt (E, 2, size,
    size), the Schur couplings (E, 2, 2, size, size) to subtract at (camera k, camera l) and the
    reduced half gradients (E, 2, size)."""
    a, b, r = _residuals(v, edges, rot, trans, sim)
    eye = torch.eye(3, dtype=a.dtype, device=a.device)
    tau = v.tau[..., None, None] * eye
    # (E, 2, 7, 3, size): ROT, TRANS and, with camera scales, the log scale
    jt = torch.cat((-skew(a), tau, a[..., None]) if camera_scale else (-skew(a), tau), dim=-1)
    js = torch.cat((skew(b), -tau, -b[..., None]), dim=-1)  # (..., SIM_SIZE): rot, trans, scale
    h_tt = torch.einsum("eksai,eksaj->ekij", jt, jt)
    h_ts = torch.einsum("eksai,eksaj->ekij", jt, js)
    h_ss = torch.einsum("eksai,eksaj->eij", js, js)
    g_t = torch.einsum("eksai,eksa->eki", jt, r)
    g_s = torch.einsum("eksai,eksa->ei", js, r)
    g_s[:, LOG_SCALE] -= scale_pull / 2
    ridge = 1e-9 * torch.diagonal(h_ss, dim1=-2, dim2=-1).sum(-1) + 1e-30
    h_ss = h_ss + ridge[:, None, None] * torch.eye(SIM_SIZE, dtype=a.dtype, device=a.device)
    inv_ss = torch.linalg.inv(h_ss)
    x = h_ts @ inv_ss[:, None]  # (E, 2, size, SIM_SIZE)
    coupling = torch.einsum("ekij,elmj->eklim", x, h_ts)
    return h_tt, coupling, g_t - (x @ g_s[:, None, :, None])[..., 0]


def solve_poses(m: TermMoments, edges: Tensor, rot: Tensor, trans: Tensor, fixed: Tensor,
                iters: int = LM_ITERS, scale_pull: float = 0.0, extra: Sequence[PoseQuadratic] = (),
                solver: str = "auto") -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor]]:
    """Levenberg-Marquardt on all camera poses except `fixed` (N,) bool; returns the new
    (rot, trans) and the matching optimal edge similarities (scale, R, t).

    `scale_pull` mu adds -mu sum_e log s_e to the cost: the Lagrange term of the scale gauge.
    `extra`: more cost terms in the poses (video alignment's flow and smoothness models).
    `solver`: how the step's linear system is solved (`BlockSystem.solve`; same solution).
    """
    rot, trans, _, sim = _levenberg_marquardt(m, edges, rot, trans, fixed, iters, scale_pull,
                                              extra, camera_scale=False, solver=solver)
    return rot, trans, sim


def solve_camera_similarities(m: TermMoments, edges: Tensor, rot: Tensor, trans: Tensor,
                              fixed: Tensor, iters: int = LM_ITERS, scale_pull: float = 0.0,
                              solver: str = "auto"
                              ) -> tuple[Tensor, Tensor, Tensor, tuple[Tensor, Tensor, Tensor]]:
    """As `solve_poses`, with a scale per camera besides its pose: its points become
    exp(sigma_n) R_n q + t_n. Returns the new (rot, trans), the factors exp(sigma_n) (N,), 1 on
    the `fixed` cameras, and the optimal edge similarities. The squared cost shrinks with the
    scene, so a few fixed cameras do not hold its scale: give the gauge's `scale_pull`."""
    return _levenberg_marquardt(m, edges, rot, trans, fixed, iters, scale_pull, (),
                                camera_scale=True, solver=solver)


def _levenberg_marquardt(m: TermMoments, edges: Tensor, rot: Tensor, trans: Tensor, fixed: Tensor,
                         iters: int, scale_pull: float, extra: Sequence[PoseQuadratic],
                         camera_scale: bool, solver: str
                         ) -> tuple[Tensor, Tensor, Tensor, tuple[Tensor, Tensor, Tensor]]:
    """The solver of `solve_poses` and, with `camera_scale`, of `solve_camera_similarities`."""
    v = virtual_residuals(m)
    n = rot.shape[0]
    size = CAM_SIM_SIZE if camera_scale else POSE_SIZE
    scale = torch.ones(n, dtype=rot.dtype, device=rot.device)

    def cost_of(lin: Tensor, r: Tensor, t: Tensor, sim: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        return (_residuals(v, edges, lin, t, sim)[2].square().sum()
                - scale_pull * torch.log(sim[0]).sum() + sum(q.cost(r, t) for q in extra))

    lin = rot  # exp(sigma_n) R_n
    sim = edge_similarities(m, edges, lin, trans, scale_pull)
    cost = cost_of(lin, rot, trans, sim)
    free = (~fixed).repeat_interleave(size).to(rot.dtype)
    lam = 1e-6
    for _ in range(iters):
        hess, grad = reduced_system(v, edges, n, lin, trans, sim, scale_pull, camera_scale)
        for term in extra:
            h_extra, g_extra = term.system(rot, trans)
            hess, grad = hess + h_extra, grad + g_extra
        hess = hess.masked(free)
        grad = grad * free
        diagonal = hess.diagonal()
        improved = False
        while lam < 1e10:
            damp = diagonal * lam + 1e-12 * diagonal.mean()
            step = -hess.with_diagonal(damp).solve(grad, solver).reshape(n, size)
            turn = so3_exp(step[:, ROT])
            grow = torch.exp(step[:, CAM_LOG_SCALE]) if camera_scale else torch.ones_like(scale)
            new_rot, new_scale = turn @ rot, grow * scale
            new_lin = new_scale[:, None, None] * new_rot
            new_trans = grow[:, None] * (turn @ trans[..., None])[..., 0] + step[:, TRANS]
            new_sim = edge_similarities(m, edges, new_lin, new_trans, scale_pull)
            new_cost = cost_of(new_lin, new_rot, new_trans, new_sim)
            if new_cost <= cost:
                improved = True
                break
            lam *= 10
        if not improved:
            break
        gain = (cost - new_cost) / cost.abs().clamp(min=1e-300)
        rot, scale, lin, trans = new_rot, new_scale, new_lin, new_trans
        sim, cost = new_sim, new_cost
        lam = max(lam / 10, 1e-12)
        if gain < 1e-8:
            break
    return rot, trans, scale, sim
