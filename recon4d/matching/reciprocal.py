"""Fast reciprocal nearest neighbours between two dense descriptor maps (MASt3R matching).

Seeds on a subsampled grid of image 1 walk image 1 -> image 2 -> image 1 until they stop moving;
the pairs they settle on are mutual nearest neighbours. Scores are computed in tiles of at most
`block_size` x `block_size`, so memory stays O(block_size^2) whatever the map size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from recon4d.errors import InputError
from recon4d.options import DEFAULT_BLOCK_SIZE, DEFAULT_MAX_ITER, DISTANCES


def nearest_neighbours(query: torch.Tensor, base: torch.Tensor, dist: str = "dot",
                       block_size: int | None = DEFAULT_BLOCK_SIZE) -> torch.Tensor:
    """Index in `base` (N, D) of the nearest row to each row of `query` (Q, D), shape (Q,).

    `dot` maximises the dot product, `l2` minimises the Euclidean distance. Ties go to the lowest
    index, also across tiles (a later tile must be strictly better to win).
    """
    if dist not in DISTANCES:
        raise ValueError(f"dist must be one of {DISTANCES}, got {dist!r}")
    n_query, n_base = query.shape[0], base.shape[0]
    step_q = max(n_query if block_size is None else min(block_size, n_query), 1)
    step_b = max(n_base if block_size is None else min(block_size, n_base), 1)
    # l2: argmin |q - b|^2 = argmax (2 q.b - |b|^2); |q|^2 is constant per row
    base_sq = (base * base).sum(dim=1) if dist == "l2" else None
    out = torch.empty(n_query, dtype=torch.long, device=query.device)
    # one score buffer reused by every tile: no fresh large allocation (page faults) per tile
    buffer = torch.empty(step_q * step_b, dtype=query.dtype, device=query.device)
    for q0 in range(0, n_query, step_q):
        q = query[q0:q0 + step_q]
        best_val = torch.full((q.shape[0],), -torch.inf, dtype=query.dtype, device=query.device)
        best_idx = torch.zeros(q.shape[0], dtype=torch.long, device=query.device)
        for b0 in range(0, n_base, step_b):
            b = base[b0:b0 + step_b]
            scores = torch.mm(q, b.T, out=buffer[:q.shape[0] * b.shape[0]].view(len(q), len(b)))
            if base_sq is not None:
                scores.mul_(2).sub_(base_sq[b0:b0 + step_b])
            val, idx = scores.max(dim=1)  # first maximum on ties
            better = val > best_val
            best_val = torch.where(better, val, best_val)
            best_idx = torch.where(better, idx + b0, best_idx)
        out[q0:q0 + q.shape[0]] = best_idx
    return out


def grid_seeds(mask: torch.Tensor, subsample: int, min_seeds: int = 0) -> torch.Tensor:
    """Sorted flat indices of grid pixels (start subsample//2, step subsample) inside `mask`.

    While fewer than `min_seeds` grid pixels fall inside the mask, the step is halved (down to 1),
    so that small masks still get seeds.
    """
    height, width = mask.shape
    step = subsample
    while True:
        ys = torch.arange(step // 2, height, step, device=mask.device)
        xs = torch.arange(step // 2, width, step, device=mask.device)
        flat = (ys[:, None] * width + xs[None, :]).reshape(-1)
        seeds = flat[mask.reshape(-1)[flat]]
        if seeds.numel() >= min_seeds or step == 1:
            return seeds
        step = max(step // 2, 1)


@dataclass
class ReciprocalResult:
    """Reciprocal matches as flat pixel indices (y * W + x), sorted by idx1 then idx2."""

    idx1: torch.Tensor
    idx2: torch.Tensor
    queries_per_call: list[int] = field(default_factory=list)  # active seeds of each NN search

    def xy1(self, width1: int) -> torch.Tensor:
        """Matches in image 1 as (x, y) pixels, shape (M, 2)."""
        return torch.stack([self.idx1 % width1, self.idx1 // width1], dim=1)

    def xy2(self, width2: int) -> torch.Tensor:
        """Matches in image 2 as (x, y) pixels, shape (M, 2)."""
        return torch.stack([self.idx2 % width2, self.idx2 // width2], dim=1)


def _check_maps(desc1: torch.Tensor, desc2: torch.Tensor) -> None:
    if desc1.ndim != 3 or desc2.ndim != 3 or desc1.shape[-1] != desc2.shape[-1]:
        raise InputError(f"descriptor maps must be (H, W, D) with the same D, got "
                         f"{tuple(desc1.shape)} and {tuple(desc2.shape)}")
    for name, d in (("desc1", desc1), ("desc2", desc2)):
        if not torch.isfinite(d).all():
            raise InputError(f"{name} contains NaN or infinite values")


def _mask_or_all(mask: torch.Tensor | None, shape: torch.Size, device: torch.device,
                 name: str) -> torch.Tensor:
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    mask = torch.as_tensor(mask, device=device)
    if tuple(mask.shape) != tuple(shape):
        raise InputError(f"{name} has shape {tuple(mask.shape)}, the descriptor map is "
                         f"{tuple(shape)}")
    return mask.bool()


def _half_step(feats_from: torch.Tensor, cur_from: torch.Tensor, feats_to: torch.Tensor,
               cur_to: torch.Tensor, active: torch.Tensor, dist: str,
               block_size: int) -> torch.Tensor:
    """Send the active seeds' current points to their nearest neighbours on the other side
    (updating `cur_to` in place); returns the seeds whose point there changed."""
    new = nearest_neighbours(feats_from[cur_from[active]], feats_to, dist, block_size)
    moved = new != cur_to[active]
    cur_to[active] = new
    return active[moved]


def reciprocal_nn(desc1: torch.Tensor, desc2: torch.Tensor, *, subsample: int = 8,
                  mask1: torch.Tensor | None = None, mask2: torch.Tensor | None = None,
                  min_seeds: int = 0, dist: str = "dot",
                  block_size: int | None = DEFAULT_BLOCK_SIZE,
                  max_iter: int = DEFAULT_MAX_ITER,
                  device: str | torch.device | None = None) -> ReciprocalResult:
    """Reciprocal nearest neighbours between maps `desc1` (H1, W1, D) and `desc2` (H2, W2, D).

    Optional boolean masks (H, W) restrict both the seeds and the candidate pixels of each image,
    so no match can land outside them. Without masks this reproduces MASt3R's
    `fast_reciprocal_NNs(..., subsample_or_initxy1=subsample, dist, block_size)` exactly.
    """
    _check_maps(desc1, desc2)
    device = torch.device(device) if device is not None else desc1.device
    dim = desc1.shape[-1]
    valid1 = _mask_or_all(mask1, desc1.shape[:2], device, "mask1")
    valid2 = _mask_or_all(mask2, desc2.shape[:2], device, "mask2")
    pix1 = valid1.reshape(-1).nonzero().squeeze(1)  # compact index -> flat pixel index
    pix2 = valid2.reshape(-1).nonzero().squeeze(1)
    seeds = grid_seeds(valid1, subsample, min_seeds)
    empty = torch.zeros(0, dtype=torch.long)
    if seeds.numel() == 0 or pix2.numel() == 0:
        return ReciprocalResult(empty, empty.clone())
    feats1 = desc1.to(device).reshape(-1, dim)[pix1]
    feats2 = desc2.to(device).reshape(-1, dim)[pix2]

    cur1 = torch.searchsorted(pix1, seeds)  # compact image-1 point of every seed
    cur2 = torch.full_like(cur1, -1)  # compact image-2 point, -1 before the first step
    active = torch.arange(seeds.numel(), device=device)
    calls: list[int] = []
    directions = ((feats1, cur1, feats2, cur2), (feats2, cur2, feats1, cur1))
    for step in range(2 * max_iter):  # alternate image 1 -> 2 and image 2 -> 1
        if active.numel() == 0:
            break
        calls.append(active.numel())
        active = _half_step(*directions[step % 2], active, dist, block_size)
    converged = torch.ones(seeds.numel(), dtype=torch.bool, device=device)
    converged[active] = False
    idx1, idx2 = pix1[cur1[converged]], pix2[cur2[converged]]
    n2 = desc2.shape[0] * desc2.shape[1]
    keys = torch.unique(idx1 * n2 + idx2)  # deduplicated, sorted by idx1 then idx2
    return ReciprocalResult((keys // n2).cpu(), (keys % n2).cpu(), calls)
