"""Matches of one pair on disk: a `.npz` of plain arrays (layout in docs/formats.md, "Matches")."""

from __future__ import annotations

import os

import numpy as np

from recon4d.io.atomic import atomic_path
from recon4d.matching.pipeline import PairMatches, PreparedImage

MATCHES_FORMAT = 1


def match_arrays(pm: PairMatches, image1: PreparedImage, image2: PreparedImage
                 ) -> dict[str, np.ndarray]:
    """Every array of the `.npz` of pair (i, j)."""
    out = {
        "format": np.asarray(MATCHES_FORMAT),
        "pair": np.asarray([pm.i, pm.j], dtype=np.int64),
        "xy1": pm.xy1_orig.astype(np.float64), "xy2": pm.xy2_orig.astype(np.float64),
        "xy1_model": pm.xy1.numpy(), "xy2_model": pm.xy2.numpy(),
        "conf": pm.conf.numpy(), "similarity": pm.similarity.numpy(),
        "image_size1": np.asarray(image1.geometry.original, dtype=np.int64),
        "image_size2": np.asarray(image2.geometry.original, dtype=np.int64),
        "model_size1": np.asarray(image1.geometry.model_shape[::-1], dtype=np.int64),
        "model_size2": np.asarray(image2.geometry.model_shape[::-1], dtype=np.int64),
    }
    if pm.two_view is not None:
        out.update(pose=pm.two_view.pose.numpy(), scale=np.asarray(pm.two_view.scale),
                   pts3d=pm.two_view.pts3d.numpy(), residual=pm.two_view.residual.numpy(),
                   inliers=pm.two_view.inliers.numpy())
    return out


def save_matches(path: str | os.PathLike, pm: PairMatches, image1: PreparedImage,
                 image2: PreparedImage) -> None:
    """Write the matches of one pair to `path` (.npz) atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **match_arrays(pm, image1, image2))
