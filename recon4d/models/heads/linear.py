"""Linear head: one Linear on the last decoder tokens, pixel-shuffled back to full resolution."""

from __future__ import annotations

import torch
from torch import nn


def tokens_to_pixels(feat: torch.Tensor, rows: int, cols: int, patch: int) -> torch.Tensor:
    """B x (rows*cols) x (C*patch^2) token features -> B x (rows*patch) x (cols*patch) x C.

    Same order as `pixel_shuffle`: channel c*patch^2 + i*patch + j of token (r, q) goes to channel
    c of pixel (patch*r + i, patch*q + j); the result is channels last.
    """
    b = feat.shape[0]
    x = feat.reshape(b, rows, cols, -1, patch, patch).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(b, rows * patch, cols * patch, -1)


class LinearHead(nn.Module):
    """`proj` Linear(dec_dim -> channels * patch^2) on the last (dec_norm-ed) decoder entry."""

    def __init__(self, dec_dim: int, channels: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Linear(dec_dim, channels * patch_size**2)

    def forward(self, decout: list[torch.Tensor], image_size: tuple[int, int]) -> torch.Tensor:
        """Raw channels-last map B x H x W x channels."""
        p = self.patch_size
        return tokens_to_pixels(self.proj(decout[-1]), image_size[0] // p, image_size[1] // p, p)
