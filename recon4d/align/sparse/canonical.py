"""Canonical view of each image: its own-frame pointmaps of all pairs fused into one, with a
confidence and a focal (MASt3R sparse GA, §4.3.2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from recon4d.align.focal import estimate_focal
from recon4d.align.inputs import PairData
from recon4d.errors import InputError

FOCAL_CLIP = (0.5, 3.5)  # canonical focal range, units of recon4d.align.focal.focal_base


@dataclass
class CanonicalViews:
    """Per image: fused pointmap in its own camera (N, H, W, 3), confidence (N, H, W) and the
    Weiszfeld focal of that pointmap (N,)."""

    points: Tensor
    conf: Tensor
    focal: Tensor

    @property
    def depth(self) -> Tensor:
        return self.points[..., 2]


def canonical_views(data: PairData) -> CanonicalViews:
    """Fuse, per image i, the pointmaps P_i^e of the edges e = (i, *) (image i in its own frame).

    Each pair has its own scale, so every map is first brought to the mean median depth of the
    image's maps; then averaged with weights C - 0.999 (the reference's). Confidence
    sum(C^2) / sum(C); focal by Weiszfeld with the principal point at the centre.
    """
    n = data.n_images
    sums = torch.zeros(n, data.height, data.width, 3, dtype=torch.float64)
    weights = torch.zeros(n, data.height, data.width, dtype=torch.float64)
    conf_sq = torch.zeros_like(weights)
    conf_sum = torch.zeros_like(weights)
    medians: list[list[Tensor]] = [[] for _ in range(n)]
    for e, (i, _) in enumerate(data.edges.tolist()):
        medians[i].append(data.pts_i[e, ..., 2].median().double())
    missing = [i for i in range(n) if not medians[i]]
    if missing:
        raise InputError(f"predictions: images {missing} are never the first view of a pair; "
                         "sparse alignment needs each image's own-frame pointmap (symmetrize "
                         "the pair graph)")
    target = torch.stack([torch.stack(m).mean() for m in medians])
    for e, (i, _) in enumerate(data.edges.tolist()):
        pts = data.pts_i[e].double()
        scale = target[i] / pts[..., 2].median().clamp(min=1e-12)
        conf = data.conf_i[e].double()
        w = conf - 0.999
        sums[i] += w[..., None] * pts * scale
        weights[i] += w
        conf_sq[i] += conf * conf
        conf_sum[i] += conf
    points = sums / weights[..., None]
    focal = estimate_focal(points, min_focal=FOCAL_CLIP[0], max_focal=FOCAL_CLIP[1])
    return CanonicalViews(points, conf_sq / conf_sum, focal)
