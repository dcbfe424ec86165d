"""The sparse problem: matches as flat index arrays for the losses, weak pairs for the fallback,
and the match counts that build the kinematic tree."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from recon4d.align.inputs import PairData
from recon4d.align.sparse.anchors import AnchorGrid
from recon4d.align.sparse.losses import FallbackTerms, MatchTerms
from recon4d.align.sparse.matches import Correspondences


def match_counts(corrs: list[Correspondences], n: int) -> np.ndarray:
    """(N, N) symmetric number of matches per pair."""
    scores = np.zeros((n, n))
    for c in corrs:
        scores[c.i, c.j] = scores[c.j, c.i] = len(c)
    return scores


def strong_pairs(corrs: list[Correspondences], conf_thr: float) -> list[Correspondences]:
    """Pairs whose best match confidence exceeds `conf_thr` (the others use the fallback)."""
    return [c for c in corrs if len(c) and float(c.conf.max()) > conf_thr]


def match_terms(corrs: list[Correspondences], grid: AnchorGrid, offsets: Tensor) -> MatchTerms:
    """Flatten the matches of `corrs` (both ends: image, anchor and depth ratio of the pixel,
    position (sub-pixel when the matches are))."""
    def end(img: int, xy: Tensor, exact: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return (torch.full((len(xy),), img, dtype=torch.long), grid.anchor_of(xy),
                offsets[img, xy[:, 1], xy[:, 0]].double(), exact)
    parts = [end(c.i, c.xy_i, c.exact_i()) + end(c.j, c.xy_j, c.exact_j()) + (c.conf.double(),)
             for c in corrs]
    if not parts:
        empty_l, empty_f = torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.float64)
        parts = [(empty_l, empty_l, empty_f, empty_f.reshape(0, 2)) * 2 + (empty_f,)]
    return MatchTerms(*(torch.cat(t) for t in zip(*parts, strict=True)))


def fallback_terms(data: PairData, strong: list[Correspondences], grid: AnchorGrid,
                   static: Tensor | None) -> FallbackTerms | None:
    """Edges (i, j) of pairs without strong matches: the pair's anchor points and weights
    (confidence - 1, zero on moving pixels when `static` (N, H, W) is given)."""
    good = {(c.i, c.j) for c in strong}
    rows = [e for e, (i, j) in enumerate(data.edges.tolist())
            if i != j and (min(i, j), max(i, j)) not in good]
    if not rows:
        return None
    sel = torch.tensor(rows)
    edges = data.edges[sel].cpu()
    xy = grid.pixels()

    def at(maps: Tensor) -> Tensor:
        return maps[sel][:, xy[:, 1], xy[:, 0]].double().cpu()

    w_i, w_j = at(data.conf_i) - 1, at(data.conf_j) - 1
    if static is not None:
        keep = grid.sample(static.double())
        w_i, w_j = w_i * keep[edges[:, 0]], w_j * keep[edges[:, 1]]
    return FallbackTerms(edges[:, 0], edges[:, 1], at(data.pts_i), at(data.pts_j), w_i, w_j)
