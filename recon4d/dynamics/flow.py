"""Motion masks from optical flow against camera-induced flow (MonST3R, spec §2.4 and §8.2).

For every edge (i, j): error = |induced - optical| (pixels) on frame i's grid; each error map is
normalised on its own; a frame's dynamic map is the mean of the maps of the edges leaving it
(self-pairs excluded), optionally smoothed; mask = map > threshold. The published normalisation
is min-max per map ("minmax"). "noise" (the default) divides by NOISE_MULTIPLE times the map's
median error and clips to [0, 1]: movers cover a minority of a frame, so the median is the
pair's static noise (flow error plus pose error, both growing with the frame gap), and a pixel
scores 1 where its error is 12 such noise units, however large the motion. "robust" (the
previous default) divides by the map's 98th percentile instead, which movers covering more
than 2 % of the image dominate. With `reliable_only`, pixels whose static target leaves image j
or whose flow fails the forward-backward check (occlusions) are left out of a map. The frame
maps are smoothed by a small Gaussian (SMOOTHING of the image diagonal), which removes the
speckle of single-pixel flow failures.

Conventions: N frames, E edges, H x W model resolution; `images` (N, H, W, 3) uint8;
maps (N, H, W) float32 in [0, 1]; masks (N, H, W) bool, True = moving.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from recon4d.dynamics.flow_geometry import induced_flows, reverse_edges
from recon4d.dynamics.masks import MotionMasks
from recon4d.dynamics.optical_flow import optical_flow
from recon4d.errors import InputError, OptionError
from recon4d.geometry.cameras import pixel_grid
from recon4d.inference.predictions import PairPredictions

FLOW_THRESHOLD = 0.35  # MonST3R's motion_mask_thre
NORMALISATIONS = ("minmax", "robust", "noise")
ROBUST_QUANTILE = 0.98  # "robust": the map is divided by this quantile of its valid pixels,
ROBUST_FLOOR = 0.02  # but by at least this fraction of the image diagonal (pixels), so the
# noise of a static pair is not stretched to [0, 1]
NOISE_MULTIPLE = 12.0  # "noise": a map is error / (this x its median error), clipped to 1
NOISE_FLOOR = 0.05  # pixels: the smallest median error "noise" divides by (noise-free flows)
SMOOTHING = 1 / 320  # Gaussian sigma of the frame maps, as a fraction of the image diagonal
EPS = 1e-6
FB_TOLERANCE = 3.0  # pixels: MonST3R's forward-backward consistency bound


def sample_bilinear(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(E, H, W, C) values of (E, H, W, C) maps at (E, H, W, 2) pixel positions (u, v);
    positions outside the image take the nearest border value."""
    height, width = field.shape[1:3]
    scale = np.array([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], np.float32)
    grid = torch.from_numpy(np.nan_to_num(points).astype(np.float32) * scale - 1.0)
    maps = torch.from_numpy(np.ascontiguousarray(field, dtype=np.float32)).permute(0, 3, 1, 2)
    out = F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.permute(0, 2, 3, 1).numpy()


def reliable_pixels(edges: np.ndarray, induced: np.ndarray, optical: np.ndarray) -> np.ndarray:
    """(E, H, W) bool: the static target is inside image j and the flow passes the
    forward-backward check |F_ij + F_ji(p + F_ij)| < FB_TOLERANCE (occlusions fail it)."""
    height, width = induced.shape[1:3]
    grid = pixel_grid(height, width, like=induced[0, ..., 0]).astype(np.float32)
    target = grid + induced
    inside = ((target[..., 0] >= 0) & (target[..., 0] <= width - 1)
              & (target[..., 1] >= 0) & (target[..., 1] <= height - 1))
    back = sample_bilinear(optical[reverse_edges(edges)], grid + optical)
    return inside & (np.linalg.norm(optical + back, axis=-1) < FB_TOLERANCE)


def flow_errors(induced: np.ndarray, optical: np.ndarray) -> np.ndarray:
    """(E, H, W) float32 end-point error |induced - optical| in pixels, NaN where the induced
    flow is NaN (no depth, or behind camera j)."""
    if induced.shape != optical.shape or induced.ndim != 4 or induced.shape[-1] != 2:
        raise InputError(f"flow masks: induced flow {induced.shape} and optical flow "
                         f"{optical.shape} must both be (E, H, W, 2)")
    return np.linalg.norm(induced - optical, axis=-1).astype(np.float32)


def normalise_errors(errors: np.ndarray, normalisation: str = "minmax") -> np.ndarray:
    """Each (H, W) map of (E, H, W) errors scaled to [0, 1] on its own (module docstring);
    NaN stays NaN."""
    if normalisation not in NORMALISATIONS:
        raise OptionError(f"flow-mask normalisation must be one of {NORMALISATIONS}, "
                          f"not {normalisation!r}")
    flat = errors.reshape(len(errors), -1)
    valid = np.isfinite(flat).any(1)
    low = np.zeros(len(errors), np.float32)
    if normalisation == "minmax":
        low[valid] = np.nanmin(flat[valid], axis=1)
        high = np.zeros(len(errors), np.float32)
        high[valid] = np.nanmax(flat[valid], axis=1)
    elif normalisation == "noise":
        noise = np.full(len(errors), NOISE_FLOOR, np.float32)
        noise[valid] = np.maximum(noise[valid], np.nanmedian(flat[valid], axis=1))
        high = NOISE_MULTIPLE * noise
    else:
        high = np.full(len(errors), ROBUST_FLOOR * float(np.hypot(*errors.shape[1:])),
                       np.float32)
        high[valid] = np.maximum(high[valid], np.nanquantile(flat[valid], ROBUST_QUANTILE, axis=1))
    scaled = (errors - low[:, None, None]) / (high - low + EPS)[:, None, None]
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def frame_maps(edges: np.ndarray, maps: np.ndarray, num_frames: int) -> np.ndarray:
    """(N, H, W) mean over the edges leaving each frame of its (E, H, W) maps (NaN skipped).

    A pixel no edge judges gets 0 (static); InputError names a frame that leaves in no edge.
    """
    sums = np.zeros((num_frames, *maps.shape[1:]), np.float64)
    counts = np.zeros_like(sums)
    for (i, j), m in zip(edges, maps, strict=True):
        if i != j:
            judged = np.isfinite(m)
            sums[i] += np.where(judged, m, 0.0)
            counts[i] += judged
    lonely = [n for n in range(num_frames) if not ((edges[:, 0] == n) & (edges[:, 1] != n)).any()]
    if lonely:
        raise InputError(f"flow masks: frame {lonely[0]} is in no pair with another frame "
                         f"({len(lonely)} such frames)")
    return (sums / np.maximum(counts, 1)).astype(np.float32)


def smooth_maps(maps: np.ndarray, sigma: float) -> np.ndarray:
    """(N, H, W) float32 maps blurred by a separable Gaussian of `sigma` pixels (replicated
    borders); sigma <= 0 returns them unchanged."""
    if sigma <= 0:
        return maps
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    out = F.pad(torch.from_numpy(np.ascontiguousarray(maps, np.float32))[:, None],
                (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(F.conv2d(out, kernel.view(1, 1, 1, -1)), kernel.view(1, 1, -1, 1))
    return out[:, 0].numpy()


def flow_masks(predictions: PairPredictions, images: np.ndarray, *, method: str = "dis",
               threshold: float = FLOW_THRESHOLD, raft_weights: str | os.PathLike | None = None,
               normalisation: str = "noise", reliable_only: bool = True,
               seed_dis: bool = True, dis_preset: str = "fine",
               smoothing: float = SMOOTHING) -> MotionMasks:
    """Per-frame motion masks of pair `predictions` and their model-resolution `images`.

    `method` is the optical flow ("dis" with `dis_preset`, started from the induced flow when
    `seed_dis`, or "raft" with local `raft_weights`); `smoothing` is the Gaussian sigma of the
    frame maps as a fraction of the image diagonal (0 = none). MonST3R's published procedure is
    normalisation="minmax", reliable_only=False, smoothing=0 (with seed_dis=False,
    dis_preset="medium" for DIS); the defaults reach a mean J of 0.80 on synthetic scenes at
    512x384 where it scores 0.02 (benchmarks/bench_flow_masks.py).
    """
    if not predictions.uniform:
        raise InputError("flow masks need one image size for all frames; these predictions mix "
                         f"{len(predictions.groups)} shapes")
    images = np.asarray(images)
    edges = predictions.edges
    pts1 = predictions.pred1["pts3d"].numpy()
    if images.shape[1:3] != pts1.shape[1:3] or len(images) < predictions.num_images:
        raise InputError(f"flow masks: images {images.shape} do not match the predictions "
                         f"({predictions.num_images} frames of {pts1.shape[1:3]})")
    induced = induced_flows(edges, pts1, predictions.pred2["pts3d_in_other_view"].numpy(),
                            predictions.pred1["conf"].numpy(), predictions.pred2["conf"].numpy())
    optical = optical_flow(images, edges, method, raft_weights=raft_weights,
                           dis_preset=dis_preset,
                           initial=induced if method == "dis" and seed_dis else None)
    errors = flow_errors(induced, optical)
    if reliable_only:
        errors = np.where(reliable_pixels(edges, induced, optical), errors, np.nan)
    maps = normalise_errors(errors, normalisation)
    sigma = smoothing * float(np.hypot(*images.shape[1:3]))
    per_frame = smooth_maps(frame_maps(edges, maps, len(images)), sigma)
    return MotionMasks(masks=per_frame > threshold, maps=per_frame, threshold=float(threshold),
                       method=f"flow:{method}")
