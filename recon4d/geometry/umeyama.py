"""Weighted least-squares similarity between corresponding point sets (Umeyama 1991).

Finds s, R, t minimising sum_m w_m |s R src_m + t - dst_m|^2, from the points or from their
weighted moments (the fast solver accumulates moments and never holds the points). Batched
over leading dimensions; computed in float64. Degenerate input (no weight, all source points
at one place) gives the identity rotation and scale 1 instead of NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

from recon4d.geometry.backend import Array, as_float, as_float64, identity, namespace

TINY = 1e-300  # a weight or spread at most this is treated as none


@dataclass
class PairMoments:
    """Weighted moments of corresponding points src -> dst, batched over leading dims (...).

    `weight` (...) total weight, `mean_src` / `mean_dst` (..., 3), `cross` (..., 3, 3) =
    sum w (dst - mean_dst)(src - mean_src)^T, `var_src` (...) = sum w |src - mean_src|^2.
    """

    weight: Array
    mean_src: Array
    mean_dst: Array
    cross: Array
    var_src: Array


def point_moments(src: Array, dst: Array, weights: Array | None = None) -> PairMoments:
    """Moments of (..., M, 3) correspondences with (..., M) non-negative weights (default 1)."""
    xp = namespace(src, dst, weights)
    src = as_float64(xp, src)
    dst = as_float(xp, dst, like=src)
    weights = xp.ones_like(src[..., 0]) if weights is None else as_float(xp, weights, like=src)
    total = weights.sum(-1)
    safe = xp.clip(total, TINY, None)[..., None]
    mean_src = (weights[..., None] * src).sum(-2) / safe
    mean_dst = (weights[..., None] * dst).sum(-2) / safe
    cs, cd = src - mean_src[..., None, :], dst - mean_dst[..., None, :]
    cross = xp.einsum("...m,...mi,...mj->...ij", weights, cd, cs)
    var_src = (weights * (cs * cs).sum(-1)).sum(-1)
    return PairMoments(total, mean_src, mean_dst, cross, var_src)


def umeyama_from_moments(moments: PairMoments,
                         with_scale: bool = True) -> tuple[Array, Array, Array]:
    """(scale (...), rotation (..., 3, 3), translation (..., 3)) from `point_moments`."""
    xp = namespace(moments.cross)
    u, sing, vh = xp.linalg.svd(moments.cross)
    det_sign = xp.sign(xp.linalg.det(u) * xp.linalg.det(vh))
    flip = xp.ones_like(sing)
    flip[..., 2] = xp.where(det_sign == 0, 1.0, det_sign)  # keep a proper rotation
    rot = u @ (flip[..., None] * vh)
    degenerate = (sing.sum(-1) <= TINY) | (moments.var_src <= TINY)
    rot = xp.where(degenerate[..., None, None], identity(xp, 3, like=rot), rot)
    ones = xp.ones_like(moments.var_src)
    if with_scale:
        scale = (sing * flip).sum(-1) / xp.clip(moments.var_src, TINY, None)
        scale = xp.where(degenerate | (scale <= 0), ones, scale)
    else:
        scale = ones
    trans = moments.mean_dst - scale[..., None] * (rot @ moments.mean_src[..., None])[..., 0]
    return scale, rot, trans


def umeyama(src: Array, dst: Array, weights: Array | None = None,
            with_scale: bool = True) -> tuple[Array, Array, Array]:
    """Similarity (scale, rotation, translation) with dst ~ scale * R @ src + t, float64.

    `src`, `dst` (..., M, 3), optional `weights` (..., M); `with_scale=False` fixes scale to 1.
    """
    return umeyama_from_moments(point_moments(src, dst, weights), with_scale)

