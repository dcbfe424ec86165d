"""Patch embeddings: 16x16 stride-16 conv to tokens, plus the (row, col) grid position of each.

`PatchEmbedDust3R` (inference) embeds the tensor as it is. `ManyARPatchEmbed` (training
construction, `patch_embed_cls='ManyAR_PatchEmbed'`) expects landscape tensors and transposes the
entries whose `true_shape` is portrait back before embedding them.
"""

from __future__ import annotations

import torch
from torch import nn

from recon4d.errors import InputError


def grid_positions(rows: int, cols: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(rows*cols) x 2 int64 positions (n // cols, n % cols) of a row-major token grid."""
    r = torch.arange(rows, device=device)
    c = torch.arange(cols, device=device)
    return torch.stack(torch.meshgrid(r, c, indexing="ij"), dim=-1).reshape(-1, 2)


class PatchEmbedDust3R(nn.Module):
    """Conv2d(3 -> dim, kernel = stride = patch) then row-major flattening; no norm."""

    def __init__(self, dim: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def _check(self, img: torch.Tensor) -> None:
        h, w = img.shape[-2:]
        if img.dim() != 4 or h % self.patch_size or w % self.patch_size:
            raise InputError(
                f"network input must be B x 3 x H x W with H and W multiples of {self.patch_size},"
                f" got shape {tuple(img.shape)}")

    def _embed(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.proj(img)
        b, _, rows, cols = x.shape
        pos = grid_positions(rows, cols, img.device).expand(b, -1, -1)
        return x.flatten(2).transpose(1, 2), pos

    def forward(
        self, img: torch.Tensor, true_shape: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens B x N x dim and positions B x N x 2; `true_shape` is not used."""
        self._check(img)
        return self._embed(img)


class ManyARPatchEmbed(PatchEmbedDust3R):
    """Landscape-stored batches: portrait entries (height > width) are swapped back first."""

    def forward(
        self, img: torch.Tensor, true_shape: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens (float32) and positions on each entry's true grid."""
        self._check(img)
        b, _, h, w = img.shape
        if w < h:
            raise InputError(
                f"ManyAR_PatchEmbed expects landscape image tensors (W >= H), got {h}x{w}")
        if true_shape is None:
            portrait = torch.zeros(b, dtype=torch.bool, device=img.device)
        else:
            portrait = (true_shape[:, 0] > true_shape[:, 1]).to(img.device)
        if not bool(portrait.any()) or bool(portrait.all()):
            x, pos = self._embed(img.transpose(-1, -2) if bool(portrait.any()) else img)
            return x.float(), pos
        n = (h // self.patch_size) * (w // self.patch_size)
        x = img.new_empty((b, n, self.proj.out_channels), dtype=torch.float32)
        pos = torch.empty((b, n, 2), dtype=torch.int64, device=img.device)
        for sel, part in ((~portrait, img[~portrait]), (portrait, img[portrait].transpose(-1, -2))):
            tokens, pos[sel] = self._embed(part)
            x[sel] = tokens.float()
        return x, pos
