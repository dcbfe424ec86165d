"""A seeded pose-graph problem with known cameras, for the refinement's tests and benchmarks.

Each edge of a pair graph over n true cameras sees `points` 3D points in both cameras' frames;
the second view holds them in the edge's own similarity frame (random rotation, translation and
scale, as a pair prediction does), with noise. Their weighted moments are what
`recon4d.align.pose_graph` solves from; the starting poses are the true ones perturbed (camera 0
exact and fixed, the gauge).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from recon4d.align.pose_graph import TermMoments
from recon4d.geometry.rotations import so3_exp
from recon4d.inference import make_pairs

F64 = torch.float64


@dataclass(frozen=True)
class PoseGraphProblem:
    """Moments (E, 2) of the pairs, edges (E, 2), true and starting poses (N, 3, 3) / (N, 3),
    and the fixed cameras (N,) bool."""

    moments: TermMoments
    edges: Tensor
    rot: Tensor
    trans: Tensor
    start_rot: Tensor
    start_trans: Tensor
    fixed: Tensor

    def solver_args(self) -> tuple[TermMoments, Tensor, Tensor, Tensor, Tensor]:
        """(moments, edges, start rot, start trans, fixed): the first arguments of
        `solve_poses` and `solve_camera_similarities`."""
        return self.moments, self.edges, self.start_rot, self.start_trans, self.fixed


def pose_graph_problem(n: int, graph: str, seed: int = 0, points: int = 12,
                       noise: float = 0.02, perturb: float = 0.05) -> PoseGraphProblem:
    """The problem over `n` cameras paired by `graph` (a `make_pairs` name), seeded."""
    gen = torch.Generator().manual_seed(seed)
    edges = torch.as_tensor(make_pairs(n, graph))
    rot = so3_exp(0.3 * torch.randn(n, 3, generator=gen, dtype=F64))
    trans = torch.cumsum(0.5 * torch.randn(n, 3, generator=gen, dtype=F64), 0)
    e = len(edges)
    s_rot = so3_exp(torch.randn(e, 3, generator=gen, dtype=F64))
    s_trans = torch.randn(e, 3, generator=gen, dtype=F64)
    s_scale = 0.5 + torch.rand(e, generator=gen, dtype=F64)
    q = torch.randn(e, 2, points, 3, generator=gen, dtype=F64) + torch.tensor([0, 0, 3.0])
    world = q @ rot[edges].transpose(-1, -2) + trans[edges][:, :, None]
    p = ((world - s_trans[:, None, None]) @ s_rot[:, None]) / s_scale[:, None, None, None]
    p = p + noise * torch.randn(p.shape, generator=gen, dtype=F64)
    w = 0.5 + torch.rand(e, 2, points, generator=gen, dtype=F64)
    z = torch.cat((q, p), -1)
    total = w.sum(-1)
    mean = (w[..., None] * z).sum(-2) / total[..., None]
    centred = z - mean[..., None, :]
    moments = TermMoments(total, mean, torch.einsum("ekm,ekmi,ekmj->ekij", w, centred, centred))
    start_rot = so3_exp(perturb * torch.randn(n, 3, generator=gen, dtype=F64)) @ rot
    start_trans = trans + perturb * torch.randn(n, 3, generator=gen, dtype=F64)
    start_rot[0], start_trans[0] = rot[0], trans[0]
    fixed = torch.zeros(n, dtype=torch.bool)
    fixed[0] = True
    return PoseGraphProblem(moments, edges, rot, trans, start_rot, start_trans, fixed)
