"""Weighted Procrustes / Umeyama registration, batched, from points or from their moments."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class PairMoments:
    """Weighted first and second moments of corresponding points (src -> dst), batched over B.

    `weight` (B,), `mean_src`/`mean_dst` (B, 3), `cross` (B, 3, 3) = sum w (dst - mean_dst)
    (src - mean_src)^T, `var_src` (B,) = sum w |src - mean_src|^2. Enough for the registration.
    """

    weight: Tensor
    mean_src: Tensor
    mean_dst: Tensor
    cross: Tensor
    var_src: Tensor


def point_moments(src: Tensor, dst: Tensor, weights: Tensor) -> PairMoments:
    """Moments of (B, M, 3) correspondences with (B, M) non-negative weights, in float64."""
    src, dst, weights = src.double(), dst.double(), weights.double()
    total = weights.sum(1)
    safe = total.clamp(min=1e-300)[:, None]
    mean_src = (weights[..., None] * src).sum(1) / safe
    mean_dst = (weights[..., None] * dst).sum(1) / safe
    cs, cd = src - mean_src[:, None], dst - mean_dst[:, None]
    cross = torch.einsum("bm,bmi,bmj->bij", weights, cd, cs)
    var_src = (weights * cs.square().sum(-1)).sum(1)
    return PairMoments(total, mean_src, mean_dst, cross, var_src)


def umeyama_from_moments(mom: PairMoments) -> tuple[Tensor, Tensor, Tensor]:
    """(scale (B,), R (B, 3, 3), t (B, 3)) minimising sum w |s R src + t - dst|^2.

    Degenerate inputs (no weight, all sources at one point) give the identity rotation and
    scale 1 rather than NaN.
    """
    u, sing, vh = torch.linalg.svd(mom.cross)
    flip = torch.ones_like(sing)
    flip[:, 2] = torch.sign(torch.linalg.det(u) * torch.linalg.det(vh))
    flip[:, 2] = torch.where(flip[:, 2] == 0, 1.0, flip[:, 2])
    rot = u @ (flip[..., None] * vh)
    degenerate = (sing.sum(-1) <= 1e-300) | (mom.var_src <= 1e-300)
    eye = torch.eye(3, dtype=rot.dtype, device=rot.device).expand_as(rot)
    rot = torch.where(degenerate[:, None, None], eye, rot)
    scale = (sing * flip).sum(-1) / mom.var_src.clamp(min=1e-300)
    scale = torch.where(degenerate | (scale <= 0), torch.ones_like(scale), scale)
    trans = mom.mean_dst - scale[:, None] * (rot @ mom.mean_src[..., None])[..., 0]
    return scale, rot, trans


def weighted_umeyama(src: Tensor, dst: Tensor, weights: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Similarity transform of (B, M, 3) `src` onto `dst`, weighted; float64 results."""
    return umeyama_from_moments(point_moments(src, dst, weights))
