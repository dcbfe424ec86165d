"""MASt3R-SLAM back end: keyframe Sim(3) poses joined by dense-match edges, refined by windowed
Gauss-Newton (algorithms-spec §6 "Back end", §8.4.4).

An edge (a, b) comes from the decoder run with a as view 1 and b as view 2, with weights sqrt(Q)
per usable pixel of b; its residuals are tracking's (`recon4d.slam.mast3r_tracking`): keyframe
b's canonical points against points in a's camera moved into b's camera by T_b^-1 T_a. Those
points are the run's own prediction of b's pixels in a's camera brought to a's canonical scale,
as tracking uses X_kf: the same surface point as b's pixel by construction, so no match
position error enters the uncalibrated poses. Calibrated, they are put on the calibrated rays
of their matches' sub-pixel positions in a (precise matches only, as in tracking), the pixel
the pixel residuals need; the reference compares a's canonical points at the integer matched
pixels. Edges are added both ways. The first keyframe is fixed. A solve
moves the newest `window` keyframes and the old endpoints of the most recent
`loop_keyframes` loop edges of that window; it uses the edges among them and, per free keyframe,
its `anchor_edges` most recent edges to held keyframes, which tie the solve to the held map. The
number of poses and edges in a solve is therefore capped however often a path revisits a place,
and a solve costs the same at keyframe 10 and keyframe 10 000 (the reference solves every
keyframe, §6). Huber IRLS, no damping, a failed Cholesky gives a zero step.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from recon4d.geometry.sim3 import DOF, sim3_exp, sim3_inverse
from recon4d.slam.mast3r_matching import identity_pixels
from recon4d.slam.mast3r_store import DenseField, Paged, SpillStore
from recon4d.slam.mast3r_tracking import (
    Residuals,
    cholesky_step,
    constrain_to_rays,
    pixel_depth_residuals,
    ray_dist_residuals,
    relative_jacobians,
    robust_normal_equations,
)

STEP_TOL = 1e-8


class Edge(Paged):
    """One direction (a, b) of an edge: keyframe b's pixels `pix_b` (M,), flat indices into its
    pointmap, with weights sqrt(Q) (M,) and their points `target` (M, 3) in a's camera at a's
    canonical scale (`edge_targets`; calibrated, on the calibrated rays of their matched
    positions in a). The stream stores int32 indices and float32 values, 20 bytes a pixel
    (every edge is kept for the loop edges' old endpoints), and may spill them to disk
    (`DenseField`s, `recon4d.slam.mast3r_store`)."""

    pix_b = DenseField()
    weight = DenseField()
    target = DenseField()

    def __init__(self, a: int, b: int, target: Tensor, pix_b: Tensor, weight: Tensor) -> None:
        super().__init__()
        self.a, self.b = a, b
        self.target, self.pix_b, self.weight = target, pix_b, weight

    def without_pixels(self, keyframe: int, dropped: Tensor) -> Edge:
        """The edge without the entries that read a pixel of `keyframe` marked in `dropped`
        (H*W,) bool (e.g. movers found after the edge was matched); itself when `keyframe` is
        not b (an edge reads b's pixels only)."""
        if keyframe != self.b:
            return self
        keep = ~dropped.to(self.pix_b.device)[self.pix_b.long()]
        return Edge(self.a, self.b, self.target[keep], self.pix_b[keep], self.weight[keep])


def edge_targets(canonical_a: Tensor, pred_a: Tensor, pred_b: Tensor, usable_a: Tensor,
                 pix_b: Tensor) -> Tensor:
    """(M, 3) the decoder run's prediction `pred_b` (H, W, 3) of b's pixels `pix_b` (M,) in a's
    camera, rescaled to keyframe a's canonical pointmap `canonical_a` (H, W, 3) by the median
    per-pixel distance ratio of `canonical_a` to the run's prediction `pred_a` of a, over a's
    usable pixels `usable_a` (H, W) bool (all pixels when none is usable): the runs of a pair
    have their own scales."""
    in_run, canonical = (x.reshape(-1, 3).norm(dim=-1) for x in (pred_a, canonical_a))
    keep = usable_a.reshape(-1) & (in_run > 0)
    if not bool(keep.any()):
        keep = in_run > 0
    ratio = (canonical[keep] / in_run[keep]).median()
    return pred_b.reshape(-1, 3)[pix_b] * ratio


@dataclass(frozen=True)
class Calibration:
    """Known intrinsics K (3, 3) of keyframes of (height, width) pixels: the back end then uses
    the pixel and log-depth residuals on points constrained to their calibrated rays."""

    intrinsics: Tensor
    height: int
    width: int

    def grid(self) -> Tensor:
        """(H*W, 2) float64 pixel positions (u, v)."""
        return identity_pixels(self.height, self.width).reshape(-1, 2).double()


def edge_residuals(pose_a: Tensor, pose_b: Tensor, x_a: Tensor, x_b: Tensor, pix_b: Tensor,
                   weight: Tensor, calib: Calibration | None = None) -> Residuals:
    """The tracking residuals of one edge direction (b's points against a's moved into b's
    camera), with Jacobians (M, R, 14) for left steps of (T_a, T_b)."""
    relative = sim3_inverse(pose_b) @ pose_a
    if calib is None:
        res = ray_dist_residuals(x_b, x_a, relative, weight)
    else:
        res = pixel_depth_residuals(x_b, calib.grid()[pix_b], x_a, relative,
                                    calib.intrinsics.double(), (calib.height, calib.width),
                                    weight)
    jac_b, jac_a = relative_jacobians(pose_b, res.jac)
    return Residuals(res.r, torch.cat((jac_a, jac_b), dim=-1), res.sqrt_info)


class PoseGraph:
    """Keyframe Sim(3) camera-to-world poses (float64) and the edges between them."""

    def __init__(self, window: int = 10, iters: int = 10, loop_gap: int = 5,
                 calib: Calibration | None = None, loop_keyframes: int = 5,
                 anchor_edges: int = 4, edge_store: SpillStore | None = None) -> None:
        self.window, self.iters, self.loop_gap, self.calib = window, iters, loop_gap, calib
        self.loop_keyframes, self.anchor_edges = loop_keyframes, anchor_edges
        self.edge_store = edge_store
        self.poses: list[Tensor] = []
        self.edges: list[Edge] = []
        self._by_keyframe: dict[int, list[int]] = defaultdict(list)

    def __len__(self) -> int:
        return len(self.poses)

    def add_keyframe(self, pose: Tensor) -> int:
        """Append a keyframe with its (4, 4) Sim(3) pose; returns its id. The graph lives on
        the CPU in float64."""
        self.poses.append(pose.detach().to("cpu", torch.float64).clone())
        return len(self.poses) - 1

    def add_edge(self, edge: Edge) -> None:
        """Add one direction of an edge (its per-pixel data to `edge_store` when given)."""
        self.edges.append(edge)
        if self.edge_store is not None:
            self.edge_store.add(edge)
        for k in {edge.a, edge.b}:
            self._by_keyframe[k].append(len(self.edges) - 1)

    def free_keyframes(self) -> list[int]:
        """The keyframes a solve moves: the newest `window` ones and the older endpoints of their
        `loop_keyframes` most recent loop edges (at least `loop_gap` keyframes apart), never
        keyframe 0."""
        newest = range(max(1, len(self.poses) - self.window), len(self.poses))
        loops = sorted({e for k in newest for e in self._by_keyframe[k]
                        if abs(self.edges[e].a - self.edges[e].b) >= self.loop_gap}, reverse=True)
        free, old = set(newest), []
        for e in loops:
            if len(old) >= self.loop_keyframes:
                break
            old += [k for k in (self.edges[e].a, self.edges[e].b)
                    if k and k not in free and k not in old]
        return sorted(free.union(old))

    def solve_set(self) -> tuple[list[int], list[Edge]]:
        """The free keyframes of the next solve and its edges: every edge among them and, per free
        keyframe, its `anchor_edges` most recent edges to held keyframes."""
        free = self.free_keyframes()
        moving, chosen = set(free), set()
        for k in free:
            anchors = 0
            for e in reversed(self._by_keyframe[k]):
                other = self.edges[e].b if self.edges[e].a == k else self.edges[e].a
                if other in moving:
                    chosen.add(e)
                elif anchors < self.anchor_edges:
                    chosen.add(e)
                    anchors += 1
        return free, [self.edges[e] for e in sorted(chosen)]

    def optimise(self, points: Callable[[int], Tensor]) -> list[int]:
        """Gauss-Newton over the free keyframes' poses; `points(k)` gives keyframe k's canonical
        pointmap (H*W, 3). Returns the ids of the keyframes that moved."""
        free, edges = self.solve_set()
        if not free:
            return []
        slot = {k: n for n, k in enumerate(free)}
        cache = self._points(points, {e.b for e in edges})
        size = DOF * len(free)
        for _ in range(self.iters):
            hess = torch.zeros(size, size, dtype=torch.float64)
            grad = torch.zeros(size, dtype=torch.float64)
            for edge in edges:
                h, g, _ = robust_normal_equations(self._residuals(edge, cache))
                ends = [(side, slot[k]) for side, k in enumerate((edge.a, edge.b)) if k in slot]
                for si, ni in ends:
                    grad[_block(ni)] += g[_block(si)]
                    for sj, nj in ends:
                        hess[_block(ni), _block(nj)] += h[_block(si), _block(sj)]
            step = cholesky_step(hess, grad)
            for k, n in slot.items():
                self.poses[k] = sim3_exp(step[_block(n)]) @ self.poses[k]
            if step.norm() < STEP_TOL:
                break
        return free

    def cost(self, points: Callable[[int], Tensor]) -> float:
        """Robust cost of every edge at the current poses (for tests and diagnostics)."""
        cache = self._points(points, {e.b for e in self.edges})
        return sum(robust_normal_equations(self._residuals(e, cache))[2] for e in self.edges)

    def _points(self, points: Callable[[int], Tensor], ids: set[int]) -> dict[int, Tensor]:
        """Keyframe pointmaps (H*W, 3) float64, on their calibrated rays with known intrinsics."""
        cache = {k: points(k).reshape(-1, 3).double() for k in ids}
        if self.calib is not None:
            grid, k_matrix = self.calib.grid(), self.calib.intrinsics.double()
            cache = {k: constrain_to_rays(x, grid, k_matrix) for k, x in cache.items()}
        return cache

    def _residuals(self, edge: Edge, cache: dict[int, Tensor]) -> Residuals:
        return edge_residuals(self.poses[edge.a], self.poses[edge.b], edge.target.double(),
                              cache[edge.b][edge.pix_b], edge.pix_b, edge.weight.double(),
                              self.calib)


def _block(n: int) -> slice:
    """The 7 entries of pose slot n in the stacked step."""
    return slice(DOF * n, DOF * n + DOF)
