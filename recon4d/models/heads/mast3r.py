"""MASt3R `catmlp+dpt` head: DPT pointmap channels plus per-pixel local descriptors from an MLP."""

from __future__ import annotations

import torch
from torch import nn

from recon4d.models.blocks import Mlp
from recon4d.models.heads.dpt import DPT
from recon4d.models.heads.linear import tokens_to_pixels


class MASt3RHead(nn.Module):
    """Channels [xyz, conf?] from `dpt`, then [desc x D, desc_conf?] from `head_local_features`.

    The MLP reads the concatenation [encoder output | last decoder entry] of every token.
    """

    def __init__(self, enc_dim: int, dec_dim: int, dec_depth: int, channels: int,
                 local_channels: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.dpt = DPT(enc_dim, dec_dim, dec_depth, channels)
        idim = enc_dim + dec_dim
        self.head_local_features = Mlp(idim, 4 * idim, local_channels * patch_size**2)

    def forward(self, decout: list[torch.Tensor], image_size: tuple[int, int]) -> torch.Tensor:
        """Raw map B x H x W x (channels + local_channels)."""
        p = self.patch_size
        pts = self.dpt(decout, image_size).permute(0, 2, 3, 1)
        feat = self.head_local_features(torch.cat([decout[0], decout[-1]], dim=-1))
        local = tokens_to_pixels(feat, image_size[0] // p, image_size[1] // p, p)
        return torch.cat([pts, local], dim=-1)
