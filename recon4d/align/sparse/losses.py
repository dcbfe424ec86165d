"""Losses of the sparse alignment, vectorised over every match (§4.3.6-8).

rho_gamma(x) = (x + o)^gamma - o^gamma with o = (1/gamma)^(1/(gamma-1)): slope 1 at 0, robust
(gamma < 1) or between L1 and L2 (gamma > 1). The coarse stage compares matched 3D points, the
refinement reprojects each matched point into the other image; pairs without usable matches fall
back on a down-weighted regression onto the pair's own pointmaps at the anchors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from recon4d.align.sparse.params import Cameras, SparseParameters

GAMMA_3D, GAMMA_2D, GAMMA_FALLBACK = 1.5, 0.5, 1.1
FALLBACK_WEIGHT = 0.01


def rho(x: Tensor, gamma: float) -> Tensor:
    """(x + o)^gamma - o^gamma, o = (1/gamma)^(1/(gamma - 1)): rho(0) = 0, rho'(0) = 1."""
    o = (1.0 / gamma) ** (1.0 / (gamma - 1.0))
    return (x + o) ** gamma - o ** gamma


@dataclass
class MatchTerms:
    """Every match of the pairs that pass the confidence threshold, both ends ("a", "b"):
    image, anchor, canonical depth ratio to the anchor, pixel (x, y); and its weight."""

    img_a: Tensor
    anc_a: Tensor
    off_a: Tensor
    pix_a: Tensor
    img_b: Tensor
    anc_b: Tensor
    off_b: Tensor
    pix_b: Tensor
    weight: Tensor

    def __len__(self) -> int:
        return int(self.weight.shape[0])


@dataclass
class FallbackTerms:
    """Weak edges (i, j): the pair's points at the anchors, image i (`pts_i`) and image j
    (`pts_j`), both in camera i, (K, A, 3); weights (K, A) (confidence, 0 where masked)."""

    cam: Tensor
    other: Tensor
    pts_i: Tensor
    pts_j: Tensor
    w_i: Tensor
    w_j: Tensor

    def __len__(self) -> int:
        return int(self.cam.shape[0])


def _ends(params: SparseParameters, cams: Cameras, depths: Tensor, m: MatchTerms
          ) -> tuple[Tensor, Tensor]:
    return (params.points(cams, depths, m.img_a, m.anc_a, m.off_a, m.pix_a),
            params.points(cams, depths, m.img_b, m.anc_b, m.off_b, m.pix_b))


def loss_3d(params: SparseParameters, cams: Cameras, depths: Tensor, m: MatchTerms) -> Tensor:
    """sum c rho_1.5(|X_a - X_b|) / sum c over the matches (world units)."""
    xa, xb = _ends(params, cams, depths, m)
    return (m.weight * rho((xa - xb).norm(dim=1), GAMMA_3D)).sum() / m.weight.sum()


def loss_2d(params: SparseParameters, cams: Cameras, depths: Tensor, m: MatchTerms) -> Tensor:
    """sum c rho_0.5(reprojection error in pixels) / sum c, both directions of every match."""
    xa, xb = _ends(params, cams, depths, m)
    err_a = (params.project(cams, xb, m.img_a) - m.pix_a).norm(dim=1)
    err_b = (params.project(cams, xa, m.img_b) - m.pix_b).norm(dim=1)
    return (m.weight * (rho(err_a, GAMMA_2D) + rho(err_b, GAMMA_2D))).sum() / (
        2 * m.weight.sum())


def loss_fallback(params: SparseParameters, cams: Cameras, depths: Tensor, f: FallbackTerms,
                  anchors: Tensor) -> Tensor:
    """rho_1.1 distance between the model's anchors of i and j in camera i and the pair's
    points scaled onto them (closed-form scale, not differentiated), confidence weighted."""
    k = len(f)
    idx = torch.arange(anchors.shape[0]).expand(k, -1).reshape(-1)
    pix = anchors.double().expand(k, -1, -1).reshape(-1, 2)
    ones = torch.ones_like(idx, dtype=torch.float64)
    cam_i, other = f.cam.repeat_interleave(anchors.shape[0]), f.other.repeat_interleave(
        anchors.shape[0])
    own = params.points(cams, depths, cam_i, idx, ones, pix) / cams.factor
    seen = params.points(cams, depths, other, idx, ones, pix) / cams.factor
    rot, centre = cams.rot.index_select(0, cam_i), cams.centre.index_select(0, cam_i)
    own = (rot * (own - centre)[:, :, None]).sum(1).reshape(k, -1, 3)  # R^T (x - c)
    seen = (rot * (seen - centre)[:, :, None]).sum(1).reshape(k, -1, 3)
    with torch.no_grad():
        scale = ((f.w_i * own.norm(dim=-1)).sum(1) / (f.w_i * f.pts_i.norm(dim=-1)).sum(1)
                 .clamp(min=1e-12))[:, None, None]
    dist_i = (scale * f.pts_i - own).norm(dim=-1)
    dist_j = (scale * f.pts_j - seen).norm(dim=-1)
    total = (f.w_i * rho(dist_i, GAMMA_FALLBACK)).sum() + (f.w_j * rho(dist_j, GAMMA_FALLBACK)
                                                           ).sum()
    return FALLBACK_WEIGHT * cams.factor * total / (f.w_i.sum() + f.w_j.sum()).clamp(min=1e-12)
