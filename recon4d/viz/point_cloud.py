"""A coloured point cloud with optional per-point confidence: what the viewer shows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PointCloud:
    """M points: `points` (M, 3) float32 world coordinates, `colors` (M, 3) uint8 RGB,
    `confidence` (M,) float32 or None when the file carries none."""

    points: np.ndarray
    colors: np.ndarray
    confidence: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.points.shape[0])

    @classmethod
    def empty(cls) -> PointCloud:
        """No points (a frame without moving content)."""
        return cls(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8))

    def subset(self, index: np.ndarray) -> PointCloud:
        """The points at `index` (a boolean mask or indices)."""
        conf = None if self.confidence is None else self.confidence[index]
        return PointCloud(self.points[index], self.colors[index], conf)

    def above(self, threshold: float) -> PointCloud:
        """The points whose confidence is at least `threshold` (all of them without one)."""
        return self if self.confidence is None else self.subset(self.confidence >= threshold)
