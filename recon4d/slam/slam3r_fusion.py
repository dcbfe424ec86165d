"""Fusion of a frame's world-point estimates: its L2W registration, its own local pointmap and
its predictions as a supporting view in earlier frames' I2P windows, each mapped to the world
by its camera's similarity and averaged per pixel with weights confidence - 1.

SLAM3R outputs the single L2W estimate; averaging the several estimates the stream computes
anyway lowers per-point noise without extra network calls (docs/slam.md, "Fusion").
"""

from __future__ import annotations

import torch

from recon4d.slam.slam3r_camera import FrameCamera


def to_world(camera: FrameCamera, points: torch.Tensor) -> torch.Tensor:
    """Points (..., 3) of the camera's local frame mapped by its similarity into the world."""
    pose = torch.as_tensor(camera.pose_c2w, dtype=points.dtype, device=points.device)
    return camera.scale * points @ pose[:3, :3].T + pose[:3, 3]


class PointFusion:
    """Per-pixel weighted running mean of world-point estimates (H, W, 3) of one frame."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.weight: torch.Tensor | None = None

    def add(self, points: torch.Tensor, weights: torch.Tensor) -> None:
        """One estimate with per-pixel weights (H, W) >= 0 (0 = no estimate there)."""
        weighted = points * weights[..., None]
        if self.total is None:
            self.total, self.weight = weighted, weights.clone()
        else:
            self.total, self.weight = self.total + weighted, self.weight + weights

    def mean(self, fallback: torch.Tensor) -> torch.Tensor:
        """The fused points, `fallback` where no estimate has weight."""
        if self.total is None:
            return fallback
        has = self.weight > 0
        return torch.where(has[..., None], self.total / self.weight.clamp_min(1e-12)[..., None],
                           fallback)
