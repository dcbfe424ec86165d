"""The Scene's kept points (mask true) as flat arrays shared by the PLY, GLB and COLMAP writers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon4d.scene import Scene


@dataclass
class Cloud:
    """M coloured points with a confidence each: what a PLY file or a GLB points mesh holds."""

    xyz: np.ndarray  # (M, 3) float32, world frame
    rgb: np.ndarray  # (M, 3) uint8
    conf: np.ndarray  # (M,) float32, the Scene's confidence of the point

    def __len__(self) -> int:
        return int(self.xyz.shape[0])


@dataclass
class MaskedPoints(Cloud):
    """Kept pixels' points in frame order, then row-major pixel order within a frame."""

    frame: np.ndarray  # (M,) int64 frame index
    pixel: np.ndarray  # (M, 2) int64 (x, y) at the model resolution

    def subset(self, index: np.ndarray) -> MaskedPoints:
        """The points at `index` (an index array or a boolean mask; kept in the given order)."""
        return MaskedPoints(self.xyz[index], self.rgb[index], self.conf[index],
                            self.frame[index], self.pixel[index])

    def frame_slices(self, count: int) -> list[slice]:
        """The slice of each of `count` frames' points (points are in frame order)."""
        bounds = np.searchsorted(self.frame, np.arange(count + 1))
        return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def masked_points(scene: Scene) -> MaskedPoints:
    """World points, colours and confidences of every pixel whose mask is true and depth > 0."""
    keep = scene.masks.astype(bool) & (scene.depths > 0)
    frame, ys, xs = np.nonzero(keep)
    return MaskedPoints(scene.points_world()[keep], scene.images[keep],
                        scene.confs[keep].astype(np.float32), frame.astype(np.int64),
                        np.stack([xs, ys], axis=1).astype(np.int64))


def moving_flags(scene: Scene, points: MaskedPoints) -> np.ndarray:
    """(M,) bool: the Scene's dynamic mask at each point's pixel (all False without masks)."""
    if scene.dynamic_masks is None:
        return np.zeros(len(points), dtype=bool)
    return scene.dynamic_masks.astype(bool)[points.frame, points.pixel[:, 1], points.pixel[:, 0]]


def evenly_spaced(count: int, budget: int | None) -> np.ndarray:
    """Indices of at most `budget` items spread evenly over `count` (all when within budget)."""
    if budget is None or count <= budget:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, budget).round().astype(np.int64))
