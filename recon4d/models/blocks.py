"""Pre-norm transformer blocks of the encoder and of the two cross-attending decoders."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recon4d.models.attention import CrossAttention, CrossProbe, SelfAttention
from recon4d.models.rope import RopeCoefs

LN_EPS = 1e-6


def layer_norm(dim: int) -> nn.LayerNorm:
    """LayerNorm with the eps used everywhere in the network."""
    return nn.LayerNorm(dim, eps=LN_EPS)


class Mlp(nn.Module):
    """fc1 -> exact (erf) GELU -> fc2."""

    def __init__(self, dim: int, hidden: int, out: int | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, out or dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class EncoderBlock(nn.Module):
    """x += attn(LN1(x)); x += mlp(LN2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = SelfAttention(dim, num_heads)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, rope: RopeCoefs) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), rope)
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    """Self-attention, cross-attention to the other view's tokens (through `norm_y`), MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, norm_mem: bool,
                 cross_attention: type[CrossAttention] = CrossAttention) -> None:
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = SelfAttention(dim, num_heads)
        self.cross_attn = cross_attention(dim, num_heads)
        self.norm2 = layer_norm(dim)
        self.norm3 = layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm_y = layer_norm(dim) if norm_mem else nn.Identity()

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, rope_x: RopeCoefs, rope_y: RopeCoefs,
        probe: CrossProbe | None = None,
    ) -> torch.Tensor:
        """New tokens of this side from its tokens `x` and the other side's `y` (unchanged);
        `probe` goes to the cross-attention."""
        x = x + self.attn(self.norm1(x), rope_x)
        x = x + self.cross_attn(self.norm2(x), self.norm_y(y), rope_x, rope_y, probe)
        return x + self.mlp(self.norm3(x))
