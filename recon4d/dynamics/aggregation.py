"""Easi3R's per-frame attention statistics and dynamic map (algorithms spec §3.1, §8.1).

Conventions: E edges, `edges[e] = (i, j)` means view 1 = frame i, view 2 = frame j; N frames;
maps are token grids (h, w) with C = layers x heads channels, layer-major.
`maps1[e]` (decoder 1, queries of view 1) lives on view 2's grid, so it describes frame j;
`maps2[e]` (decoder 2) lives on view 1's grid and describes frame i. All arrays here are torch
tensors: maps (E, h, w, C) float32, statistics (N, h, w, C) float32, maps of a frame (N, h, w).

For frame f the statistics run over the edges where f is view 2 (`k_i`, from `maps1`) and over
the edges where f is view 1 (`k_j`, from `maps2`): mean and unbiased standard deviation per token
and channel. They are accumulated edge chunk by edge chunk as float64 sums and sums of squares, so
no per-frame copy of the maps is ever made. The reference names the standard deviation "var".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recon4d.errors import InputError

# min-max normalisation: (x - min) / (max - min + EPS), as the reference does everywhere
EPS = 1e-6
# float64 working copies of at most this many map values per chunk (~64 MB)
CHUNK_VALUES = 8 * 2**20
MIN_FRAMES = 3
MIN_EDGES_PER_SIDE = 2


@dataclass
class AttentionStats:
    """Per-frame mean and standard deviation (N, h, w, C) of the two attention map families."""

    k_i_mean: torch.Tensor  # maps1 of the edges where the frame is view 2
    k_i_std: torch.Tensor
    k_j_mean: torch.Tensor  # maps2 of the edges where the frame is view 1
    k_j_std: torch.Tensor


def check_edge_coverage(edges: torch.Tensor, n_frames: int) -> None:
    """Refuse graphs whose statistics would be undefined (the originals return NaN maps)."""
    if n_frames < MIN_FRAMES:
        raise InputError(f"attention motion masks need at least {MIN_FRAMES} frames, got "
                         f"{n_frames}: the statistics run over the other frames of each frame")
    if edges.ndim != 2 or edges.shape[1] != 2:
        raise InputError(f"edges must have shape (E, 2), got {tuple(edges.shape)}")
    if len(edges) and (int(edges.min()) < 0 or int(edges.max()) >= n_frames):
        raise InputError(f"edges name frames outside 0..{n_frames - 1}")
    as_view2 = torch.bincount(edges[:, 1], minlength=n_frames)
    as_view1 = torch.bincount(edges[:, 0], minlength=n_frames)
    short = ((as_view2 < MIN_EDGES_PER_SIDE) | (as_view1 < MIN_EDGES_PER_SIDE)).nonzero()
    if len(short):
        f = int(short[0])
        raise InputError(
            f"frame {f} is view 1 of {int(as_view1[f])} and view 2 of {int(as_view2[f])} edges "
            f"({len(short)} frames are short): attention masks need every frame on both sides "
            f"of at least {MIN_EDGES_PER_SIDE} edges (a standard deviation over the edges); "
            f"use a symmetric pair graph with at least {MIN_FRAMES} frames, e.g. 'complete' or "
            f"'swin-2', symmetrized ('oneref' leaves frames on one side only)")


def fill_corner_token(maps: torch.Tensor) -> torch.Tensor:
    """Replace token (0, 0) of (E, h, w, C) maps, in place, by the mean of (0, 1) and (1, 0)."""
    maps[:, 0, 0] = (maps[:, 0, 1] + maps[:, 1, 0]) / 2
    return maps


def edge_moments(frame_of_edge: torch.Tensor, maps: torch.Tensor,
                 n_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame mean and unbiased std (N, h, w, C) float32 of the corner-filled edge maps.

    `frame_of_edge[e]` is the frame that `maps[e]` describes. Sums and sums of squares are kept
    in float64 (the squares' cancellation stays far below float32 precision).
    """
    n_edges = maps.shape[0]
    grid = maps.shape[1:]
    total = torch.zeros((n_frames, *grid), dtype=torch.float64, device=maps.device)
    total_sq = torch.zeros_like(total)
    step = max(1, CHUNK_VALUES // max(1, maps[0].numel()))
    for start in range(0, n_edges, step):
        chunk = fill_corner_token(maps[start:start + step].to(torch.float64, copy=True))
        frames = frame_of_edge[start:start + step]
        total.index_add_(0, frames, chunk)
        total_sq.index_add_(0, frames, chunk.square_())
    count = torch.bincount(frame_of_edge, minlength=n_frames).to(torch.float64)
    count = count.view(-1, *([1] * len(grid)))
    mean = total / count
    var = (total_sq - total * mean).div_(count - 1).clamp_(min=0)
    return mean.float(), var.sqrt_().float()


def aggregate_attention(edges: torch.Tensor, maps1: torch.Tensor, maps2: torch.Tensor,
                        n_frames: int) -> AttentionStats:
    """Mean and std over edges of each frame's maps, on both sides (§3.1 first half)."""
    edges = torch.as_tensor(edges, dtype=torch.long, device=maps1.device)
    check_edge_coverage(edges, n_frames)
    if maps1.shape != maps2.shape or maps1.ndim != 4 or maps1.shape[0] != edges.shape[0]:
        raise InputError(f"attention maps must both be (E, h, w, C) with E = {len(edges)} edges, "
                         f"got {tuple(maps1.shape)} and {tuple(maps2.shape)}")
    if maps1.shape[1] < 2 or maps1.shape[2] < 2:
        raise InputError(f"attention maps need a token grid of at least 2 x 2, got "
                         f"{tuple(maps1.shape[1:3])}")
    k_i_mean, k_i_std = edge_moments(edges[:, 1], maps1, n_frames)
    k_j_mean, k_j_std = edge_moments(edges[:, 0], maps2, n_frames)
    return AttentionStats(k_i_mean, k_i_std, k_j_mean, k_j_std)


def minmax_normalize(x: torch.Tensor, per_frame: bool = False) -> torch.Tensor:
    """(x - min) / (max - min + 1e-6), over the whole tensor or per frame (leading axis)."""
    if per_frame:
        dims = tuple(range(1, x.ndim))
        low, high = x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)
    else:
        low, high = x.min(), x.max()
    return (x - low) / (high - low + EPS)


def fuse_channels(stat: torch.Tensor) -> torch.Tensor:
    """A statistic (N, h, w, C) -> (N, h, w): whole-tensor min-max, channel mean, min-max again."""
    return minmax_normalize(minmax_normalize(stat).mean(dim=-1))


def dynamic_map(stats: AttentionStats) -> torch.Tensor:
    """Easi3R's dynamic map (N, h, w) in [0, 1): low/varied as view 2, high/steady as view 1."""
    i_mean, i_std = fuse_channels(stats.k_i_mean), fuse_channels(stats.k_i_std)
    j_mean, j_std = fuse_channels(stats.k_j_mean), fuse_channels(stats.k_j_std)
    return minmax_normalize((1 - i_mean) * i_std * j_mean * (1 - j_std), per_frame=True)
