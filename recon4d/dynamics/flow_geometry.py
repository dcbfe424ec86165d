"""Camera-induced flow of each edge from pair-local geometry (MonST3R's two-view estimate).

Each symmetric pair {a, b} is read on its own, as `recon4d.align.pair_viewer` does (that module
sits in the same layer, so the steps are restated here with `recon4d.geometry`): the more
confident direction (a, b) puts camera a at the origin with depth = z of its own pointmap;
camera b is the confidence-weighted similarity taking b's own pointmap (edge (b, a)) onto its
pointmap in camera a; focals come from the own pointmaps, principal points at the image centre.

Conventions: E ordered edges (i, j), images H x W; `pts1` (E, H, W, 3) = image i in camera i,
`pts2` (E, H, W, 3) = image j in camera i, `conf1`, `conf2` (E, H, W) raw confidences >= 1.
Flows (E, H, W, 2) float32 are from frame i to frame j on frame i's grid, NaN where the point
has no depth or falls behind camera j.
"""

from __future__ import annotations

import numpy as np

from recon4d.errors import InputError
from recon4d.geometry.cameras import intrinsics_matrix, pixel_grid
from recon4d.geometry.flow import induced_flow
from recon4d.geometry.transforms import invert_rigid, make_rigid
from recon4d.geometry.umeyama import umeyama

MIN_RADIUS = 2.0  # pixels nearer the principal point give no usable focal vote


def reverse_edges(edges: np.ndarray) -> np.ndarray:
    """(E,) position of edge (j, i) for each edge (i, j); InputError naming one that lacks it."""
    position = {(int(i), int(j)): e for e, (i, j) in enumerate(edges)}
    reverse = np.array([position.get((int(j), int(i)), -1) for i, j in edges], dtype=np.int64)
    missing = np.flatnonzero(reverse < 0)
    if len(missing):
        i, j = edges[missing[0]]
        raise InputError(f"flow masks need both directions of every pair: edge ({i}, {j}) has "
                         f"no ({j}, {i}) ({len(missing)} such edges); use a symmetrized graph")
    return reverse


def focal_from_points(points: np.ndarray) -> float:
    """Focal (pixels) of an (H, W, 3) camera-frame pointmap, centred principal point: the
    median over pixels of |pixel - centre| * z / |(x, y)| (robust to outlying points)."""
    height, width = points.shape[:2]
    offset = pixel_grid(height, width, like=points) - np.array([width / 2, height / 2])
    radius = np.linalg.norm(offset, axis=-1)
    lateral = np.linalg.norm(points[..., :2], axis=-1)
    usable = (radius > MIN_RADIUS) & (points[..., 2] > 0) & (lateral > 0)
    if not usable.any():
        raise InputError("flow masks: a pointmap has no point in front of its camera")
    return float(np.median(radius[usable] * points[..., 2][usable] / lateral[usable]))


def pair_induced_flows(own_a: np.ndarray, b_in_a: np.ndarray, own_b: np.ndarray,
                       weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Induced flows a -> b and b -> a (each (H, W, 2)) of one pair, world = camera a.

    `own_a` = image a in camera a, `b_in_a` = image b in camera a (edge (a, b)), `own_b` = image
    b in camera b (edge (b, a)), all (H, W, 3); `weights` (H, W) for the similarity b -> a.
    """
    height, width = own_a.shape[:2]
    centre = np.array([width / 2, height / 2])
    k_a, k_b = (intrinsics_matrix(np.array(focal_from_points(p)), centre) for p in (own_a, own_b))
    scale, rot, trans = umeyama(own_b.reshape(-1, 3), b_in_a.reshape(-1, 3), weights.reshape(-1))
    a_from_b = make_rigid(rot, trans)
    flow_ab = induced_flow(own_a[..., 2], k_a, invert_rigid(a_from_b), k_b)
    flow_ba = induced_flow(float(scale) * own_b[..., 2], k_b, a_from_b, k_a)
    return flow_ab, flow_ba


def induced_flows(edges: np.ndarray, pts1: np.ndarray, pts2: np.ndarray, conf1: np.ndarray,
                  conf2: np.ndarray) -> np.ndarray:
    """(E, H, W, 2) float32 camera-induced flow of every edge (module conventions).

    Both directions of a pair come from one geometry, built on its more confident direction
    (edge score mean(conf1) * mean(conf2), as the alignment's)."""
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    num, height, width = len(edges), *pts1.shape[1:3]
    if pts1.shape != (num, height, width, 3) or pts2.shape != pts1.shape:
        raise InputError(f"flow masks: pointmaps must be ({num}, H, W, 3), got {pts1.shape} and "
                         f"{pts2.shape}")
    if conf1.shape != pts1.shape[:3] or conf2.shape != pts1.shape[:3]:
        raise InputError(f"flow masks: confidences must be {pts1.shape[:3]}, got {conf1.shape} "
                         f"and {conf2.shape}")
    reverse = reverse_edges(edges)
    scores = conf1.reshape(num, -1).mean(1) * conf2.reshape(num, -1).mean(1)
    out = np.full((num, height, width, 2), np.nan, np.float32)
    for e in range(num):
        r = int(reverse[e])
        if e == r or (scores[e], r) < (scores[r], e):
            continue  # self-pairs reveal no motion; each pair is built from its better edge
        pts = [np.asarray(p, dtype=np.float64) for p in (pts1[e], pts2[e], pts1[r])]
        out[e], out[r] = pair_induced_flows(*pts, weights=conf1[r] * conf2[e])
    return out
