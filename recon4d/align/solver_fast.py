"""Default solver: alternating closed-form / Gauss-Newton blocks with IRLS for the L1 objective.

Each iteration makes two passes over the pair data (edge chunks, memory O(N H W)):
1. IRLS weights w / max(|r|, delta) and the moments of every (edge, side) -> all poses and edge
   similarities at once with the depth maps fixed (`pose_graph.solve_poses`);
2. IRLS weights again -> weighted mean target of every pixel of every image -> per-image pose,
   focal and depth map with the edge similarities fixed (`camera_fit.fit_cameras`; with a
   shared focal, all poses and the focal jointly: `camera_fit.fit_shared_camera`). The gauge's
   anchor image moves here too and the whole scene is moved back after the step: a frozen
   anchor left its focal and depths, and with them the trajectory, to creep for tens of
   iterations (camera ATE 1.2 % of the path where Adam reaches 0.18 %).
Each block step lowers the re-weighted (majorising) least-squares cost, so the L1 objective
decreases; iterations stop when its relative decrease falls below `tol`. With the scale gauge,
step 1 carries the gauge's Lagrange term (-L/E per edge log scale), so the fixed point is the
reference's constrained optimum rather than a per-pair best fit.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from recon4d.align.camera_fit import fit_cameras, fit_shared_camera
from recon4d.align.flow_term import FlowTerm
from recon4d.align.objective import Objective
from recon4d.align.pose_graph import TermMoments, solve_poses
from recon4d.align.pose_terms import PoseQuadratic
from recon4d.align.smooth_term import relative_residuals, smooth_quadratic
from recon4d.align.state import AlignState
from recon4d.align.video import VideoSetup
from recon4d.geometry.transforms import apply_similarity

MAX_ITERS = 40
TOL = 1e-5
IRLS_DELTA = 1e-3  # residual floor of the IRLS weights, relative to the median depth


def _sides(c):
    return ((0, c.idx_i, c.pts_i, c.w_i), (1, c.idx_j, c.pts_j, c.w_j))


def moments_pass(obj: Objective, state: AlignState, delta: float) -> tuple[TermMoments, float]:
    """Moments of z = (camera point, pair point) per (edge, side) under IRLS weights; L1 loss.

    The residual R_n q + t_n - s R_e p - t_e is one batched product of z = (q, p, 1) with a
    6x3 matrix, and all moments come from one more product z^T diag(w) z. The per-chunk arrays
    live in buffers allocated once per pass: fresh ~60 MB arrays per chunk and side, faulted
    in page by page each time, cost a fifth of the pass at 512x288.
    """
    n_edges = obj.data.n_edges
    cam = state.cam_points().reshape(state.depths.shape[0], -1, 3)
    raw = torch.zeros(n_edges, 2, 7, 7, dtype=torch.float64)
    loss = torch.zeros((), dtype=torch.float64)
    z_buf, zw_buf, res_buf = _buffers(obj, cam, (7, 7, 3))
    for c in obj.chunks():
        s, r, t = state.pw_scale[c.sl], state.pw_rot[c.sl], state.pw_trans[c.sl]
        k = c.sl.stop - c.sl.start
        z, zw, res = z_buf[:k], zw_buf[:k], res_buf[:k]
        z[..., 6] = 1
        for side, idx, pts, w in _sides(c):
            z[..., :3] = cam[idx]
            z[..., 3:6] = pts
            lin = torch.cat((state.rot[idx].transpose(1, 2),
                             -s[:, None, None] * r.transpose(1, 2),
                             (state.trans[idx] - t)[:, None]), dim=1).float()  # (k, 7, 3)
            dist = torch.linalg.vector_norm(torch.bmm(z, lin, out=res), dim=-1)
            om = w / dist.clamp(min=delta)
            loss += (w * dist).sum()
            raw[c.sl, side] = (torch.mul(z, om[..., None], out=zw).transpose(1, 2) @ z).double()
    weight = raw[..., 6, 6]
    mean = raw[..., :6, 6] / weight.clamp(min=1e-30)[..., None]
    scatter = raw[..., :6, :6] - weight[..., None, None] * mean[..., :, None] * mean[..., None, :]
    return TermMoments(weight, mean, scatter), float(loss) / obj.norm


def _buffers(obj: Objective, like: Tensor, widths: tuple[int, ...]) -> list[Tensor]:
    """Uninitialised (chunk, H*W, width) arrays, one per width, for a pass over the chunks."""
    rows = min(obj.chunk, obj.data.n_edges)
    return [like.new_empty((rows, like.shape[1], width)) for width in widths]


def targets_pass(obj: Objective, state: AlignState, delta: float) -> tuple[Tensor, Tensor]:
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


def _video_terms(video: VideoSetup, obj: Objective, state: AlignState, flow: FlowTerm | None,
                 delta: float) -> tuple[list[PoseQuadratic], float, float]:
    """Pose-step models of the active video terms, their weighted loss, and the scene-scale
    (1-homogeneous) part of that loss, at the current state."""
    t, norm = video.terms, obj.norm
    models, loss, homogeneous = [], 0.0, 0.0
    if video.uses_smooth and state.rot.shape[0] > 1:
        lam = t.translation_weight
        models.append(smooth_quadratic(state.rot, state.trans, lam, norm * t.smooth_weight,
                                       max(lam, 1e-12) * delta))
        x, y = relative_residuals(state.rot, state.trans, lam)
        homogeneous = t.smooth_weight * float(y.norm(dim=-1).sum())
        loss += t.smooth_weight * float(x.norm(dim=-1).sum()) + homogeneous
    if flow is not None:
        model, value = flow.quadratic(state.rot, state.trans, state.focals, state.pps,
                                      flow.grid_depths(state.depths), norm * t.flow_weight)
        if value <= t.flow_gate:  # MonST3R's gate: the term is off while its loss is large
            models.append(model)
            loss += t.flow_weight * value
    return models, loss, homogeneous


def _camera_step(obj: Objective, state: AlignState, delta: float, given: Tensor,
                 fix_focal: bool, shared_focal: bool) -> None:
    """Block 2 (in place): every camera's pose, focal and depth map to the IRLS targets.

    Only the user's `given` poses stay: the anchor of the rigid gauge moves too (the caller
    moves the whole scene back), else its focal and depths creep towards their optimum over
    tens of iterations, dragging the trajectory with them.
    """
    n = state.depths.shape[0]
    per_chunk = max(1, obj.chunk // 3)  # images per camera-fit chunk (~3x an edge's memory)
    targets, wsum = targets_pass(obj, state, delta)
    if shared_focal:
        state.rot, state.trans, state.focals, state.depths = fit_shared_camera(
            targets, wsum, state.rot, state.trans, state.focals, state.pps, state.depths, given,
            per_chunk)
        return
    for start in range(0, n, per_chunk):
        sl = slice(start, start + per_chunk)
        state.rot[sl], state.trans[sl], state.focals[sl], state.depths[sl] = fit_cameras(
            targets[sl], wsum[sl], state.rot[sl], state.trans[sl], state.focals[sl],
            state.pps[sl], state.depths[sl], given[sl], fix_focal)


def solve_fast(obj: Objective, state: AlignState, fixed_pose: Tensor, fix_focal: bool,
               scale_gauge: bool, max_iters: int = MAX_ITERS, tol: float = TOL,
               callback: Callable[[int, float], None] | None = None,
               video: VideoSetup | None = None) -> list[float]:
    """Minimise the objective from `state` (updated in place); returns the loss history.

    `fixed_pose` (N,) bool: poses that stay; if none, image 0 anchors the rigid gauge.
    `scale_gauge`: keep the geometric mean of the pairwise scales at its initial value (the
    objective is otherwise lowered by shrinking the whole scene).
    `video`: MonST3R's terms (module `recon4d.align.video`). Smoothness and flow enter the pose
    step as Gauss-Newton models (the camera fit stays on the multi-view term: freezing the
    poses there converged to higher objectives; Adam also moves depths and focal with the flow
    and ends ~0.03 % lower in objective, all in the flow term, yet at a worse ATE); a shared
    focal is fitted jointly with all poses (`fit_shared_camera`). The flow term starts at
    iteration ceil(flow_start * max_iters); convergence is not tested before it.
    """
    history: list[float] = []
    given = fixed_pose
    if not fixed_pose.any():
        fixed_pose = fixed_pose.clone()
        fixed_pose[0] = True
    anchor = int(fixed_pose.nonzero()[0])
    base = state.pw_scale_mean()
    anchor_pose = state.rot[anchor].clone(), state.trans[anchor].clone()

    def gauge() -> None:
        """Move the whole scene back to the gauge: the anchor's pose, the scales' mean."""
        if not given.any():
            # the nearest rotation: a product with rot^T would carry its rounding into every
            # camera at every iteration
            u, _, vh = torch.linalg.svd(anchor_pose[0] @ state.rot[anchor].T)
            turn = u @ torch.diag(torch.stack((u.new_ones(()), u.new_ones(()),
                                               torch.det(u @ vh)))) @ vh
            state.apply_similarity(torch.ones(1, dtype=turn.dtype), turn[None],
                                   (anchor_pose[1] - turn @ state.trans[anchor])[None])
        if scale_gauge:
            state.normalise_scale(base, state.trans[anchor].clone())

    edges = obj.data.edges
    _, h, w = state.depths.shape
    flow_from = None if video is None else video.flow_start_iteration(max_iters)
    flow = None if flow_from is None else FlowTerm(
        edges, video.flows, video.stride, video.masks, video.terms.pixel_threshold, h, w)
    shared_focal = video is not None and video.terms.shared_focal and not fix_focal
    for it in range(max_iters):
        delta = IRLS_DELTA * float(state.depths.median())
        moments, loss = moments_pass(obj, state, delta)
        active_flow = flow if flow is not None and it >= flow_from else None
        models, extra_loss, homogeneous = ([], 0.0, 0.0) if video is None else _video_terms(
            video, obj, state, active_flow, delta)
        history.append(loss + extra_loss)
        if callback is not None:
            callback(it, history[-1])
        settled = flow_from is None or it > flow_from
        if settled and len(history) > 1 and history[-2] - history[-1] <= tol * history[-2]:
            break
        # the scale gauge's Lagrange term: at the constrained optimum every edge's log scale
        # has gradient L / E for the part L of the loss that is 1-homogeneous in the scene
        # scale; x2 for the squared-residual units of the IRLS moments
        pull = 2 * (loss + homogeneous) * obj.norm / len(edges) if scale_gauge else 0.0
        state.rot, state.trans, (state.pw_scale, state.pw_rot, state.pw_trans) = solve_poses(
            moments, edges, state.rot, state.trans, fixed_pose, scale_pull=pull, extra=models)
        gauge()
        _camera_step(obj, state, delta, given, fix_focal, shared_focal)
        gauge()
    return history
