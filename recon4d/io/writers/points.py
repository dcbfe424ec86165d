"""The Scene's kept points (mask true) as flat arrays shared by the PLY, GLB and COLMAP writers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon4d.scene import Scene


@dataclass
class MaskedPoints:
    """M kept points in frame order, then row-major pixel order within a frame."""

    xyz: np.ndarray  # (M, 3) float32, world frame
    rgb: np.ndarray  # (M, 3) uint8
    frame: np.ndarray  # (M,) int64 frame index
    pixel: np.ndarray  # (M, 2) int64 (x, y) at the model resolution

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    def subset(self, index: np.ndarray) -> MaskedPoints:
        """The points at `index` (kept in the given order)."""
        return MaskedPoints(self.xyz[index], self.rgb[index], self.frame[index], self.pixel[index])


def masked_points(scene: Scene) -> MaskedPoints:
    """World points and colours of every pixel whose mask is true and depth is positive."""
    keep = scene.masks.astype(bool) & (scene.depths > 0)
    frame, ys, xs = np.nonzero(keep)
    return MaskedPoints(scene.points_world()[keep], scene.images[keep], frame.astype(np.int64),
                        np.stack([xs, ys], axis=1).astype(np.int64))


def evenly_spaced(count: int, budget: int | None) -> np.ndarray:
    """Indices of at most `budget` items spread evenly over `count` (all when within budget)."""
    if budget is None or count <= budget:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, budget).round().astype(np.int64))
