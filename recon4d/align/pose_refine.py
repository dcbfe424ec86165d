"""Global refinement of a windowed alignment over every pair, streamed block by block.

Aligning a long video window by window and chaining the windows by similarities accumulates
error like odometry: each window sees only its own pairs, and a window's scale error stays in
its depth maps. This refinement runs the fast solver's two block steps over ALL pairs, from the
windows' result, with every focal and principal point fixed:
1. the moments of (camera point, pair point) per (edge, side) under IRLS weights, gathered
   block by block -> all poses, a scale per camera and the pair similarities at once
   (`pose_graph.solve_camera_similarities`, with the fast solver's Lagrange pull on the pair
   scales as scale gauge); each depth map is multiplied by its camera's scale. A scale error
   shared by a whole window, which the depth step alone moves only slowly, goes in one step;
2. per block of frames, the IRLS-weighted targets of its pixels from every pair touching it ->
   its poses and depth maps (`camera_fit.fit_cameras`).
Memory is one block of frames (with the graph's reach on each side) plus O(E) moments and the
N-camera normal equations. Frame 0 keeps its pose and depth map: the gauge (world frame and
scale) of the input stays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from recon4d.align.camera_fit import fit_cameras
from recon4d.align.inputs import PairData
from recon4d.align.objective import Objective
from recon4d.align.pose_graph import TermMoments, edge_similarities, solve_camera_similarities
from recon4d.align.solver_fast import IRLS_DELTA, moments_pass, targets_pass
from recon4d.align.state import AlignState
from recon4d.errors import Recon4dError

REFINE_ITERS = 4  # IRLS rounds (each: two passes over the pairs)
REFINE_TOL = 1e-4  # stop when the L1 loss falls by less than this fraction
# a residual floor above every residual: IRLS weights equal to the confidence weights (L2)
_LEAST_SQUARES_DELTA = 1e6


@dataclass
class PairChunk:
    """The pairs inside a run of frames: `data` over the images `frames` (K,) consecutive
    (data's image k is video frame frames[k]), its edges at `positions` (k,) of the video's
    edge list. `static` (K, H, W): weights of the multi-view term (0 on moving pixels) or None."""

    positions: np.ndarray
    frames: np.ndarray
    data: PairData
    static: Tensor | None = None


PairReader = Callable[[np.ndarray], PairChunk]


def refine_alignment(state: AlignState, edges: np.ndarray, read: PairReader, block: int,
                     iters: int = REFINE_ITERS, tol: float = REFINE_TOL) -> list[float]:
    """Refine the poses and depth maps of `state` (all N frames, updated in place; its pair
    similarities are recomputed) over the pairs `edges` (E, 2); returns the history of the L1
    loss in the scale gauge (divided by the geometric mean of the pair scales, so that a common
    rescaling of the scene, which the gauge's pull allows, does not count).

    `read(frames)` gives the pairs inside the consecutive `frames`; it is called for blocks of
    `block` frames widened by the graph's reach, about three times over the video per round.
    """
    n = state.depths.shape[0]
    all_edges = torch.as_tensor(edges, dtype=torch.int64)
    reach = int((all_edges[:, 0] - all_edges[:, 1]).abs().max())
    starts = range(0, n, block)
    fixed = torch.zeros(n, dtype=torch.bool)
    fixed[0] = True
    delta = IRLS_DELTA * float(state.depths.median())
    # a least-squares pass gives each pair's similarity to start the IRLS from
    state.pw_scale = torch.ones(len(all_edges), dtype=torch.float64)
    state.pw_rot = torch.eye(3, dtype=torch.float64).repeat(len(all_edges), 1, 1)
    state.pw_trans = torch.zeros(len(all_edges), 3, dtype=torch.float64)
    moments, _ = _moments(state, all_edges, read, starts, block, reach,
                          _LEAST_SQUARES_DELTA * delta)
    state.pw_scale, state.pw_rot, state.pw_trans = edge_similarities(moments, all_edges,
                                                                     state.rot, state.trans)
    history: list[float] = []
    for _ in range(iters):
        moments, loss = _moments(state, all_edges, read, starts, block, reach, delta)
        history.append(loss / float(state.pw_scale.log().mean().exp()))
        if len(history) > 1 and history[-2] - history[-1] <= tol * history[-2]:
            break
        # the scale gauge's Lagrange term, as in the fast solver: the L1 loss is 1-homogeneous
        # in the scene scale, x2 for the squared-residual units of the IRLS moments
        state.rot, state.trans, scale, (state.pw_scale, state.pw_rot, state.pw_trans) = (
            solve_camera_similarities(moments, all_edges, state.rot, state.trans, fixed,
                                      scale_pull=2 * loss / len(all_edges)))
        state.depths *= scale.to(state.depths.dtype)[:, None, None]
        for start in starts:
            _fit_block(state, read, start, min(start + block, n), reach, delta)
    return history


def _view(state: AlignState, lo: int, hi: int, positions: np.ndarray) -> AlignState:
    """The frames lo..hi-1 of `state` (views: writes go through) with the pairs `positions`."""
    pos = torch.as_tensor(positions, dtype=torch.int64)
    return AlignState(state.rot[lo:hi], state.trans[lo:hi], state.focals[lo:hi],
                      state.pps[lo:hi], state.depths[lo:hi], state.pw_scale[pos],
                      state.pw_rot[pos], state.pw_trans[pos])


def _moments(state: AlignState, edges: Tensor, read: PairReader, starts: range, block: int,
             reach: int, delta: float) -> tuple[TermMoments, float]:
    """IRLS moments of every (edge, side), each edge from the block holding its later frame,
    and the L1 loss (sum over pixels of weight x residual)."""
    later = edges.max(dim=1).values.numpy()
    parts = [_block_moments(state, read, start, block, reach, later, delta) for start in starts]
    positions = np.concatenate([p for p, _, _ in parts])
    order = np.argsort(positions, kind="stable")
    if not np.array_equal(positions[order], np.arange(len(edges))):
        raise Recon4dError(f"alignment refinement: the pair reader must give each of the "
                           f"{len(edges)} edges inside the frames asked for")
    order_t = torch.as_tensor(order)
    return TermMoments(*(torch.cat([getattr(m, name) for _, m, _ in parts])[order_t]
                         for name in ("weight", "mean", "scatter"))), sum(x for *_, x in parts)


def _block_moments(state: AlignState, read: PairReader, start: int, block: int, reach: int,
                   later: np.ndarray, delta: float) -> tuple[np.ndarray, TermMoments, float]:
    """The moments of the edges whose later frame is in start..start+block-1 (their positions,
    moments, weighted L1 loss). A function of its own so that the block's pair data is freed
    before the next block is read (a loop body kept it, and its subset, alive one block longer:
    three blocks of pair data at the peak instead of one)."""
    lo, hi = max(0, start - reach), min(start + block, state.depths.shape[0])
    chunk = read(np.arange(lo, hi))
    own = later[chunk.positions] >= start
    positions = chunk.positions[own]
    if not own.all():  # the full chunk is dropped before the pass
        chunk = PairChunk(positions, chunk.frames, _subset(chunk.data, torch.from_numpy(own)),
                          chunk.static)
    obj = Objective(chunk.data, chunk.static)
    part, loss = moments_pass(obj, _view(state, lo, hi, positions), delta)
    return positions, part, loss * obj.norm


def _subset(data: PairData, keep: Tensor) -> PairData:
    """The edges `keep` (bool) of `data`."""
    return PairData(data.edges[keep], data.pts_i[keep], data.pts_j[keep], data.conf_i[keep],
                    data.conf_j[keep], data.n_images)


def _fit_block(state: AlignState, read: PairReader, start: int, stop: int, reach: int,
               delta: float) -> None:
    """Fit the poses and depth maps of frames start..stop-1 (frame 0 kept) to their targets
    from every pair touching them, the pair similarities and focals fixed."""
    n = state.depths.shape[0]
    lo, hi = max(0, start - reach), min(stop + reach, n)
    chunk = read(np.arange(lo, hi))
    view = _view(state, lo, hi, chunk.positions)
    targets, wsum = targets_pass(Objective(chunk.data, chunk.static), view, delta)
    first = max(start, 1)
    rows = slice(first - lo, stop - lo)
    if rows.start >= rows.stop:
        return
    sl = slice(first, stop)
    state.rot[sl], state.trans[sl], _, state.depths[sl] = fit_cameras(
        targets[rows], wsum[rows], state.rot[sl], state.trans[sl], state.focals[sl],
        state.pps[sl], state.depths[sl], torch.zeros(stop - first, dtype=torch.bool), True)
