"""The reconstructed scene handed from alignment to the writers and viewers (plain numpy)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recon4d.geometry.cameras import depth_to_world, unproject_depth
from recon4d.summary_repr import summary_repr


@dataclass
class Scene:
    """Per-frame geometry at the model input resolution, camera-to-world, OpenCV axes.

    `original_sizes[i] = (W0, H0)` and `crops[i] = (left, top, resized_w, resized_h)` describe how
    frame i was made from its source image (resize to `resized_*`, then crop at `left, top`), so
    writers can express cameras at the original resolution: x0 = (x + left + 0.5) * W0 / resized_w
    - 0.5. Both are None when the source resolution is unknown (predictions from a file).
    """

    images: np.ndarray  # (N, H, W, 3) uint8, the model inputs
    depths: np.ndarray  # (N, H, W) float32, z-depth along the optical axis
    confs: np.ndarray  # (N, H, W) float32, >= 1 for network confidences
    intrinsics: np.ndarray  # (N, 3, 3) float64, pixels of the model input
    poses_c2w: np.ndarray  # (N, 4, 4) float64
    masks: np.ndarray  # (N, H, W) bool, points kept (confidence threshold and cleaning)
    image_names: list[str] = field(default_factory=list)
    timestamps: np.ndarray | None = None  # (N,) seconds; None -> frame index
    original_sizes: np.ndarray | None = None  # (N, 2) int (W0, H0)
    crops: np.ndarray | None = None  # (N, 4) int (left, top, resized_w, resized_h)
    dynamic_masks: np.ndarray | None = None  # (N, H, W) bool, moving content

    __repr__ = summary_repr

    def __len__(self) -> int:
        return int(self.depths.shape[0])

    def points_cam(self) -> np.ndarray:
        """(N, H, W, 3) float32 points in each camera's frame (depth times pixel ray)."""
        return unproject_depth(self.depths, self.intrinsics).astype(np.float32)

    def points_world(self) -> np.ndarray:
        """(N, H, W, 3) float32 points in the world frame."""
        return depth_to_world(self.depths, self.intrinsics, self.poses_c2w).astype(np.float32)
