"""Initial cameras of the sparse alignment: chain pairwise Procrustes fits along the tree.

For tree edge (parent, child) the similarity taking the child's canonical points onto the
parent's at their matches (a weighted Umeyama fit, refitted without matches beyond 3x the median
residual) is the child's camera in the parent's frame together with their size ratio. A pair with
fewer than 3 matches uses its own pointmaps at the anchors instead. Known poses, when given,
replace the estimates after a similarity fit of the chain onto them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from recon4d.align.init_mst import similarity_to_known
from recon4d.align.inputs import PairData
from recon4d.align.known import CameraPriors
from recon4d.align.sparse.anchors import AnchorGrid
from recon4d.align.sparse.canonical import CanonicalViews
from recon4d.align.sparse.matches import Correspondences
from recon4d.align.sparse.tree import KinematicTree
from recon4d.geometry.umeyama import umeyama

MIN_MATCHES = 3
OUTLIER_FACTOR = 3.0


@dataclass
class InitialCameras:
    """Camera-to-world rotations (N, 3, 3), centres (N, 3) and sizes (N,) (depth multipliers of
    the canonical views), float64."""

    rot: Tensor
    centre: Tensor
    size: Tensor


def _robust_fit(src: Tensor, dst: Tensor, w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """dst ~ k R src + t, refitted once without residuals beyond OUTLIER_FACTOR x median."""
    k, r, t = umeyama(src, dst, w)
    res = (k * src @ r.T + t - dst).norm(dim=1)
    keep = res <= OUTLIER_FACTOR * res.median().clamp(min=1e-12)
    if int(keep.sum()) >= MIN_MATCHES:
        k, r, t = umeyama(src[keep], dst[keep], w[keep])
    return k, r, t


def _pair_fit(parent: int, child: int, matches: dict[tuple[int, int], Correspondences],
              canon: CanonicalViews, data: PairData, grid: AnchorGrid
              ) -> tuple[Tensor, Tensor, Tensor]:
    """Child camera in the parent's: (scale, R, t) with parent points ~ k R child points + t."""
    c = matches.get((min(parent, child), max(parent, child)))
    if c is not None and len(c) >= MIN_MATCHES:
        xy_p, xy_c = (c.xy_i, c.xy_j) if c.i == parent else (c.xy_j, c.xy_i)
        dst = canon.points[parent, xy_p[:, 1], xy_p[:, 0]]
        src = canon.points[child, xy_c[:, 1], xy_c[:, 0]]
        return _robust_fit(src, dst, c.conf.double())
    rows = ((data.edges[:, 0] == parent) & (data.edges[:, 1] == child)).nonzero()
    if len(rows) == 0:
        eye = torch.eye(3, dtype=torch.float64)
        return torch.ones((), dtype=torch.float64), eye, torch.zeros(3, dtype=torch.float64)
    e = int(rows[0])
    xy = grid.pixels()
    own = data.pts_i[e, xy[:, 1], xy[:, 0]].double().cpu()
    other = data.pts_j[e, xy[:, 1], xy[:, 0]].double().cpu()
    anchors_p = canon.points[parent, xy[:, 1], xy[:, 0]]
    ratio = anchors_p.norm(dim=1).sum() / own.norm(dim=1).sum().clamp(min=1e-12)
    w = data.conf_j[e, xy[:, 1], xy[:, 0]].double().cpu()
    return _robust_fit(canon.points[child, xy[:, 1], xy[:, 0]], ratio * other, w)


def chain_init(tree: KinematicTree, corrs: list[Correspondences], canon: CanonicalViews,
               data: PairData, grid: AnchorGrid, priors: CameraPriors) -> InitialCameras:
    """Cameras in the root camera's frame (root size 1), moved onto known poses if any."""
    n = canon.points.shape[0]
    matches = {(c.i, c.j): c for c in corrs}
    rot = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
    centre = torch.zeros(n, 3, dtype=torch.float64)
    size = torch.ones(n, dtype=torch.float64)
    for parent, child in tree.edges:
        k, r, t = _pair_fit(parent, child, matches, canon, data, grid)
        size[child] = size[parent] * k
        rot[child] = rot[parent] @ r
        centre[child] = rot[parent] @ (size[parent] * t) + centre[parent]
    if priors.n_known_poses:
        s, r, t = similarity_to_known(rot, centre, priors)
        rot, centre, size = r[0] @ rot, s * centre @ r[0].T + t, size * s
        known = priors.pose_mask
        rot[known], centre[known] = priors.poses[known, :3, :3], priors.poses[known, :3, 3]
    return InitialCameras(rot, centre, size)
