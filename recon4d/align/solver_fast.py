"""Default solver: alternating closed-form / Gauss-Newton blocks with IRLS for the L1 objective.

Each iteration makes two passes over the pair data (edge chunks, memory O(N H W)):
1. IRLS weights w / max(|r|, delta) and the moments of every (edge, side) -> all poses and edge
   similarities at once with the depth maps fixed (`pose_graph.solve_poses`);
2. IRLS weights again -> weighted mean target of every pixel of every image -> per-image pose,
   focal and depth map with the edge similarities fixed (`camera_fit.fit_cameras`).
Each block step lowers the re-weighted (majorising) least-squares cost, so the L1 objective
decreases; iterations stop when its relative decrease falls below `tol`. With the scale gauge,
step 1 carries the gauge's Lagrange term (-L/E per edge log scale), so the fixed point is the
reference's constrained optimum rather than a per-pair best fit.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from recon4d.align.camera_fit import fit_cameras
from recon4d.align.objective import Objective
from recon4d.align.pose_graph import TermMoments, solve_poses
from recon4d.align.state import AlignState
from recon4d.geometry.transforms import apply_similarity

MAX_ITERS = 40
TOL = 1e-4
IRLS_DELTA = 1e-3  # residual floor of the IRLS weights, relative to the median depth


def _sides(c):
    return ((0, c.idx_i, c.pts_i, c.w_i), (1, c.idx_j, c.pts_j, c.w_j))


def _moments_pass(obj: Objective, state: AlignState, delta: float) -> tuple[TermMoments, float]:
    """Moments of z = (camera point, pair point) per (edge, side) under IRLS weights; L1 loss.

    The residual R_n q + t_n - s R_e p - t_e is one batched product of z = (q, p, 1) with a
    6x3 matrix, and all moments come from one more product z^T diag(w) z.
    """
    n_edges = obj.data.n_edges
    cam = state.cam_points().reshape(state.depths.shape[0], -1, 3)
    raw = torch.zeros(n_edges, 2, 7, 7, dtype=torch.float64)
    loss = torch.zeros((), dtype=torch.float64)
    for c in obj.chunks():
        s, r, t = state.pw_scale[c.sl], state.pw_rot[c.sl], state.pw_trans[c.sl]
        for side, idx, pts, w in _sides(c):
            z = torch.cat((cam[idx], pts, torch.ones_like(pts[..., :1])), dim=-1)
            lin = torch.cat((state.rot[idx].transpose(1, 2),
                             -s[:, None, None] * r.transpose(1, 2),
                             (state.trans[idx] - t)[:, None]), dim=1).float()  # (k, 7, 3)
            dist = torch.bmm(z, lin).norm(dim=-1)
            om = w / dist.clamp(min=delta)
            loss += (w * dist).sum()
            raw[c.sl, side] = ((z * om[..., None]).transpose(1, 2) @ z).double()
    weight = raw[..., 6, 6]
    mean = raw[..., :6, 6] / weight.clamp(min=1e-30)[..., None]
    scatter = raw[..., :6, :6] - weight[..., None, None] * mean[..., :, None] * mean[..., None, :]
    return TermMoments(weight, mean, scatter), float(loss) / obj.norm


def _targets_pass(obj: Objective, state: AlignState, delta: float) -> tuple[Tensor, Tensor]:
    """IRLS-weighted mean of S_e P over the edges of every pixel, and its total weight."""
    n, h, w = state.depths.shape
    world = state.world_points().reshape(n, -1, 3)
    acc = torch.zeros_like(world)
    wsum = torch.zeros(n, h * w, dtype=world.dtype)
    for c in obj.chunks():
        s, r, t = state.pw_scale[c.sl], state.pw_rot[c.sl], state.pw_trans[c.sl]
        for _, idx, pts, wt in _sides(c):
            pred = apply_similarity(r, t, pts, s)
            om = wt / (world[idx] - pred).norm(dim=-1).clamp(min=delta)
            acc.index_add_(0, idx, om[..., None] * pred)
            wsum.index_add_(0, idx, om)
    return acc / wsum.clamp(min=1e-30)[..., None], wsum


def solve_fast(obj: Objective, state: AlignState, fixed_pose: Tensor, fix_focal: bool,
               scale_gauge: bool, max_iters: int = MAX_ITERS, tol: float = TOL,
               callback: Callable[[int, float], None] | None = None) -> list[float]:
    """Minimise the objective from `state` (updated in place); returns the loss history.

    `fixed_pose` (N,) bool: poses that stay; if none, image 0 anchors the rigid gauge.
    `scale_gauge`: keep the geometric mean of the pairwise scales at its initial value (the
    objective is otherwise lowered by shrinking the whole scene).
    """
    history: list[float] = []
    if not fixed_pose.any():
        fixed_pose = fixed_pose.clone()
        fixed_pose[0] = True
    anchor = int(fixed_pose.nonzero()[0])
    base = state.pw_scale_mean()

    def gauge() -> None:
        if scale_gauge:
            state.normalise_scale(base, state.trans[anchor].clone())

    edges = obj.data.edges
    n, h, w = state.depths.shape
    per_chunk = max(1, obj.chunk // 3)  # images per camera-fit chunk (~3x an edge's memory)
    for it in range(max_iters):
        delta = IRLS_DELTA * float(state.depths.median())
        moments, loss = _moments_pass(obj, state, delta)
        history.append(loss)
        if callback is not None:
            callback(it, loss)
        if len(history) > 1 and history[-2] - loss <= tol * history[-2]:
            break
        # the scale gauge's Lagrange term: at the constrained optimum every edge's log scale
        # has gradient L / E (the loss is 1-homogeneous in the scene scale); x2 for the
        # squared-residual units of the IRLS moments
        pull = 2 * loss * obj.norm / len(edges) if scale_gauge else 0.0
        state.rot, state.trans, (state.pw_scale, state.pw_rot, state.pw_trans) = solve_poses(
            moments, edges, state.rot, state.trans, fixed_pose, scale_pull=pull)
        gauge()
        targets, wsum = _targets_pass(obj, state, delta)
        for start in range(0, n, per_chunk):
            sl = slice(start, start + per_chunk)
            state.rot[sl], state.trans[sl], state.focals[sl], state.depths[sl] = fit_cameras(
                targets[sl], wsum[sl], state.rot[sl], state.trans[sl], state.focals[sl],
                state.pps[sl], state.depths[sl], fixed_pose[sl], fix_focal)
        gauge()
    return history
