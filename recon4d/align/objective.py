"""The dense alignment objective: confidence weights, edge chunks and the loss itself.

L = sum_e sum_pix w_i |X_i - S_e P_i^e| + w_j |X_j - S_e P_j^e|, divided by the total pixel count
of the first views (E H W), with w = log C (the reference's default confidence transform) and
S_e the edge similarity. Optional per-pixel `static` weights (video alignment: 0 on moving pixels)
multiply w on both sides.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from recon4d.align.inputs import PairData
from recon4d.geometry.transforms import apply_similarity

CHUNK_PIXELS = 1 << 21  # pixels of one side per edge chunk: bounds temporary memory


@dataclass
class EdgeChunk:
    """Edges `sl` of the data, flattened to (k, H*W, ...): indices, points, weights."""

    sl: slice
    idx_i: Tensor
    idx_j: Tensor
    pts_i: Tensor
    pts_j: Tensor
    w_i: Tensor
    w_j: Tensor


class Objective:
    """Access to the pair data in memory-bounded edge chunks, with confidence weights."""

    def __init__(self, data: PairData, static: Tensor | None = None) -> None:
        self.data = data
        hw = data.height * data.width
        self.static = None if static is None else static.reshape(data.n_images, hw).float()
        self.chunk = max(1, CHUNK_PIXELS // (data.height * data.width))
        # a confidence of exactly 1 everywhere gives no weight at all: fall back to uniform
        self.uniform = False
        self.uniform = not any(float(c.w_i.sum() + c.w_j.sum()) > 0 for c in self.chunks())

    def weights(self, conf: Tensor) -> Tensor:
        """Per-pixel weights log C from raw confidences (never negative)."""
        if self.uniform:
            return torch.ones_like(conf)
        return torch.log(conf).clamp(min=0)

    def static_weights(self, idx: Tensor) -> Tensor | float:
        """(k, H*W) static weights of images `idx`, or 1.0 without masks."""
        return 1.0 if self.static is None else self.static[idx]

    def _pixel_weights(self, conf: Tensor, idx: Tensor) -> Tensor:
        """(k, H*W) weights of one side of a chunk: log C times the static weights (no
        product, a full pass over the chunk, without masks)."""
        weights = self.weights(conf).reshape(len(idx), -1)
        return weights if self.static is None else weights * self.static_weights(idx)

    @property
    def norm(self) -> float:
        """The reference's area normaliser (sum over edges of the first view's pixel count)."""
        return float(self.data.n_edges * self.data.height * self.data.width)

    def chunks(self) -> Iterator[EdgeChunk]:
        """Edge chunks in order, flattened over pixels."""
        d = self.data
        hw = d.height * d.width
        for start in range(0, d.n_edges, self.chunk):
            sl = slice(start, min(start + self.chunk, d.n_edges))
            k = sl.stop - sl.start
            idx_i, idx_j = d.edges[sl, 0], d.edges[sl, 1]
            yield EdgeChunk(sl, idx_i, idx_j,
                            d.pts_i[sl].reshape(k, hw, 3), d.pts_j[sl].reshape(k, hw, 3),
                            self._pixel_weights(d.conf_i[sl], idx_i),
                            self._pixel_weights(d.conf_j[sl], idx_j))

    def loss(self, world: Tensor, pw_scale: Tensor, pw_rot: Tensor, pw_trans: Tensor) -> Tensor:
        """The objective for (N, H*W, 3) world points and per-edge similarities (no chunk grads)."""
        total = world.new_zeros(())
        for c in self.chunks():
            s, r, t = pw_scale[c.sl], pw_rot[c.sl], pw_trans[c.sl]
            total = total + chunk_loss(world, c, s, r, t)
        return total / self.norm


def chunk_loss(world: Tensor, c: EdgeChunk, scale: Tensor, rot: Tensor, trans: Tensor) -> Tensor:
    """Sum over the chunk of w |X - S P| on both sides (differentiable)."""
    res_i = world[c.idx_i] - apply_similarity(rot, trans, c.pts_i, scale)
    res_j = world[c.idx_j] - apply_similarity(rot, trans, c.pts_j, scale)
    return (c.w_i * res_i.norm(dim=-1)).sum() + (c.w_j * res_j.norm(dim=-1)).sum()
