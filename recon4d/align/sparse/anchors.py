"""Anchors: one optimised depth per 8x8 block; every pixel hangs off its block's centre with a
fixed depth ratio (MASt3R sparse GA, §4.3.3), and densification reverses it (§4.3.9)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

ANCHOR_STEP = 8


@dataclass
class AnchorGrid:
    """Anchors of an H x W image: block centres (offset step // 2, clipped inside the image)."""

    height: int
    width: int
    step: int = ANCHOR_STEP

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of blocks."""
        return (-(-self.height // self.step), -(-self.width // self.step))

    @property
    def count(self) -> int:
        rows, cols = self.shape
        return rows * cols

    def pixels(self) -> Tensor:
        """(A, 2) int64 (x, y) of the anchors, row-major over blocks."""
        rows, cols = self.shape
        ys = (torch.arange(rows) * self.step + self.step // 2).clamp(max=self.height - 1)
        xs = (torch.arange(cols) * self.step + self.step // 2).clamp(max=self.width - 1)
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
        return grid.reshape(-1, 2)

    def anchor_of(self, xy: Tensor) -> Tensor:
        """(M,) anchor index of pixels `xy` (M, 2) (x, y)."""
        return (xy[:, 1] // self.step) * self.shape[1] + xy[:, 0] // self.step

    def index_map(self) -> Tensor:
        """(H, W) anchor index of every pixel."""
        ys, xs = torch.meshgrid(torch.arange(self.height), torch.arange(self.width),
                                indexing="ij")
        return self.anchor_of(torch.stack((xs.reshape(-1), ys.reshape(-1)), 1)).reshape(
            self.height, self.width)

    def offsets(self, depth: Tensor) -> Tensor:
        """(N, H, W) ratio of each pixel's depth to its anchor's, from depth maps (N, H, W)."""
        anchor_depth = self.sample(depth)  # (N, A)
        return depth / anchor_depth[:, self.index_map()]

    def sample(self, maps: Tensor) -> Tensor:
        """Values (N, A, ...) of maps (N, H, W, ...) at the anchors."""
        xy = self.pixels()
        return maps[:, xy[:, 1], xy[:, 0]]


def focal_compensated(offset: Tensor, focal_ratio: Tensor) -> Tensor:
    """Depth factor of a pixel relative to its anchor once the focal moved from f0 to f:
    1 + (offset - 1) f0 / f (`focal_ratio` = f0 / f)."""
    return 1 + (offset - 1) * focal_ratio


def densify(anchor_depth: Tensor, offsets: Tensor, grid: AnchorGrid, focal_ratio: Tensor
            ) -> Tensor:
    """Dense depth (N, H, W): each pixel's anchor depth (N, A) times its focal-compensated
    canonical offset (N, H, W); `focal_ratio` (N,) = f0 / f."""
    per_pixel = anchor_depth[:, grid.index_map()]
    return per_pixel * focal_compensated(offsets, focal_ratio[:, None, None])
