"""Easi3R motion masks from decoder cross-attention (algorithms spec §3.1-3.3, §8.1).

Steps, each a function of its own module: per-frame attention statistics and the dynamic map
(`aggregation`), refinement by k-means clusters of the encoder tokens (`clusters`), bilinear
upsampling to the model resolution (here), one adaptive multi-Otsu threshold for the whole video
(`otsu`).

Conventions (numpy in, numpy out): E edges (E, 2) int, (i, j) = (view 1, view 2) frames;
`maps1`, `maps2` (E, h, w, C) float32 per-edge maps (decoder 1 on view 2's grid, decoder 2 on
view 1's grid); `features` (N, h, w, D) float32 encoder tokens per frame; `image_size` (H, W) the
model resolution the masks are returned at.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from recon4d.dynamics.aggregation import aggregate_attention, dynamic_map
from recon4d.dynamics.clusters import cluster_refine
from recon4d.dynamics.masks import MotionMasks
from recon4d.dynamics.otsu import adaptive_threshold
from recon4d.errors import InputError

METHOD = "easi3r"


def upsample_maps(maps: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Token maps (N, h, w) -> (N, H, W), bilinear with align_corners=False (§8.1.6)."""
    return F.interpolate(maps[:, None], size=tuple(image_size), mode="bilinear",
                         align_corners=False)[:, 0]


def attention_masks(edges: np.ndarray, maps1: np.ndarray, maps2: np.ndarray,
                    features: np.ndarray, image_size: tuple[int, int], *, clusters: int = 64,
                    seed: int = 42) -> MotionMasks:
    """Per-frame motion masks (N, H, W) of a clip from its per-edge attention maps and tokens.

    Raises InputError when the pair graph leaves a frame with fewer than two edges on a side
    (use a symmetric graph), when there are fewer than 3 frames, or when shapes disagree.
    """
    features_t = torch.as_tensor(features)
    if features_t.ndim != 4 or tuple(features_t.shape[1:3]) != tuple(np.shape(maps1)[1:3]):
        raise InputError(f"token features must be (N, h, w, D) on the maps' token grid "
                         f"{tuple(np.shape(maps1)[1:3])}, got {tuple(features_t.shape)}")
    if len(image_size) != 2 or min(image_size) < 1:
        raise InputError(f"image_size must be (H, W) with positive sides, got {image_size}")
    stats = aggregate_attention(torch.as_tensor(edges), torch.as_tensor(maps1),
                                torch.as_tensor(maps2), n_frames=features_t.shape[0])
    refined = cluster_refine(dynamic_map(stats), features_t, clusters=clusters, seed=seed)
    maps = upsample_maps(refined.float(), image_size)
    threshold = adaptive_threshold(maps).threshold
    return MotionMasks(masks=(maps > threshold).numpy(), maps=maps.numpy(),
                       threshold=float(threshold), method=METHOD)
