"""Motion-mask metrics of the DAVIS benchmark: region similarity J and boundary accuracy F.

J = |P and G| / |P or G| per frame (1 when both are empty). F is the F-measure of boundary
pixels: a boundary pixel is one whose label differs from its right, lower or lower-right
neighbour (neighbours outside the image are ignored); a predicted boundary pixel is correct
when a ground-truth one lies within a disk of radius r, and vice versa, with
r = ceil(0.008 * image diagonal) pixels (a tolerance >= 1 is taken as pixels directly).
Each statistic: mean over frames, recall = fraction of frames above 0.5, decay = mean of the
first quarter minus mean of the last quarter of the frames (DAVIS' overlapping quarters).
"""

from __future__ import annotations

import math

import numpy as np

from recon4d.errors import InputError
from recon4d.eval.optional import require
from recon4d.options.choices import BOUNDARY_TOLERANCE


def region_similarity(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-frame IoU of (N, H, W) boolean masks; 1 where both masks are empty."""
    inter = np.logical_and(pred, gt).sum(axis=(1, 2))
    union = np.logical_or(pred, gt).sum(axis=(1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def boundary_map(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) boundary pixels: label differs from the right, lower or lower-right neighbour."""
    out = np.zeros(masks.shape, dtype=bool)
    out[:, :, :-1] |= masks[:, :, :-1] != masks[:, :, 1:]
    out[:, :-1, :] |= masks[:, :-1, :] != masks[:, 1:, :]
    out[:, :-1, :-1] |= masks[:, :-1, :-1] != masks[:, 1:, 1:]
    return out


def boundary_radius(height: int, width: int, tolerance: float = BOUNDARY_TOLERANCE) -> int:
    """Matching radius in pixels: `tolerance` if >= 1, else ceil(tolerance * diagonal)."""
    return int(tolerance) if tolerance >= 1 else math.ceil(tolerance * math.hypot(height, width))


def matched(src: np.ndarray, dst: np.ndarray, radius: int) -> np.ndarray:
    """For (M, 3) (frame, y, x) pixels, whether a `dst` pixel of the same frame is within
    `radius` (Euclidean; a KD-tree over the boundary pixels only)."""
    if len(src) == 0 or len(dst) == 0:
        return np.zeros(len(src), dtype=bool)
    spatial = require("scipy.spatial", "the boundary F-measure")
    # Frames are spread along the first axis so pixels of different frames never match.
    spread = np.array([2.0 * radius + 2, 1.0, 1.0])
    dist = spatial.cKDTree(dst * spread).query(src * spread, distance_upper_bound=radius + 0.5)[0]
    return dist <= radius


def boundary_f(pred: np.ndarray, gt: np.ndarray,
               tolerance: float = BOUNDARY_TOLERANCE) -> np.ndarray:
    """Per-frame boundary F-measure of (N, H, W) boolean masks (module docstring)."""
    num = len(pred)
    radius = boundary_radius(pred.shape[1], pred.shape[2], tolerance)
    p_pix, g_pix = np.argwhere(boundary_map(pred)), np.argwhere(boundary_map(gt))
    n_pred = np.bincount(p_pix[:, 0], minlength=num)
    n_gt = np.bincount(g_pix[:, 0], minlength=num)
    hit_pred = np.bincount(p_pix[:, 0], weights=matched(p_pix, g_pix, radius), minlength=num)
    hit_gt = np.bincount(g_pix[:, 0], weights=matched(g_pix, p_pix, radius), minlength=num)
    # Empty boundaries: precision 1 when nothing is predicted, recall 1 when nothing is there.
    precision = np.where(n_pred > 0, hit_pred / np.maximum(n_pred, 1), 1.0)
    recall = np.where(n_gt > 0, hit_gt / np.maximum(n_gt, 1), 1.0)
    total = precision + recall
    return np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)


def decay_quarters(num: int) -> tuple[slice, slice]:
    """First and last of DAVIS' four overlapping bins: edges round-half-up(k (N-1) / 4)."""
    edges = [math.floor(k * (num - 1) / 4 + 0.5) for k in range(5)]
    return slice(edges[0], edges[1] + 1), slice(edges[3], edges[4] + 1)


def summarise(values: np.ndarray) -> tuple[float, float, float]:
    """(mean, recall, decay) of per-frame scores."""
    first, last = decay_quarters(len(values))
    return (float(np.mean(values)), float(np.mean(values > 0.5)),
            float(np.mean(values[first]) - np.mean(values[last])))


def mask_metrics(pred: np.ndarray, gt: np.ndarray,
                 tolerance: float = BOUNDARY_TOLERANCE) -> dict[str, float]:
    """J and F statistics of (N, H, W) boolean predicted masks against ground truth.

    Frame counts and sizes must match: there is no silent padding or truncation. Returns
    `J_mean`, `J_recall`, `J_decay`, `F_mean`, `F_recall`, `F_decay`, `JF_mean`, `num_frames`.
    """
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if pred.ndim != 3 or pred.shape != gt.shape:
        raise InputError(f"predicted masks {pred.shape} and ground truth {gt.shape} must both be "
                         "(N, H, W) of the same shape (frame counts must match)")
    if len(pred) == 0:
        raise InputError("no mask frames to evaluate")
    j_stats = summarise(region_similarity(pred, gt))
    f_stats = summarise(boundary_f(pred, gt, tolerance))
    names = ("mean", "recall", "decay")
    return {**{f"J_{n}": v for n, v in zip(names, j_stats, strict=True)},
            **{f"F_{n}": v for n, v in zip(names, f_stats, strict=True)},
            "JF_mean": (j_stats[0] + f_stats[0]) / 2, "num_frames": len(pred)}
