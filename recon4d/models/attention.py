"""Multi-head self- and cross-attention with 2D RoPE on queries and keys (CroCo layout).

Parameter names (`qkv`, `proj`, `projq`, `projk`, `projv`) are those of the official checkpoints.
The softmax(q k^T / sqrt(d)) v product goes through `scaled_dot_product_attention` (fused, O(N)
memory); `attend` is the single place to override for code that needs the attention logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recon4d.models.rope import RopeCoefs, apply_rope


class _Attention(nn.Module):
    """Shared head bookkeeping, the attention product and the output projection `proj`."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """softmax(q k^T * scale) v for B x heads x N x head_dim tensors."""
        return F.scaled_dot_product_attention(q, k, v, scale=self.scale)

    def _merge(self, out: torch.Tensor) -> torch.Tensor:
        """B x heads x N x d -> B x N x (heads*d), heads concatenated in order, then `proj`."""
        b, _, n, _ = out.shape
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class SelfAttention(_Attention):
    """qkv = Linear(C -> 3C), channels [q | k | v], each split into heads of consecutive dims."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__(dim, num_heads)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, rope: RopeCoefs) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, self.head_dim)
        q, k = apply_rope(qkv[:, :, :2], rope).transpose(1, 3).unbind(2)
        v = qkv[:, :, 2].transpose(1, 2)
        return self._merge(self.attend(q, k, v))


class CrossAttention(_Attention):
    """Queries from x, keys and values from the (normalised) tokens of the other view."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__(dim, num_heads)
        self.projq = nn.Linear(dim, dim)
        self.projk = nn.Linear(dim, dim)
        self.projv = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, mem: torch.Tensor, rope_x: RopeCoefs, rope_mem: RopeCoefs
    ) -> torch.Tensor:
        b, n, _ = x.shape
        m = mem.shape[1]
        heads = (self.num_heads, self.head_dim)
        q = apply_rope(self.projq(x).view(b, n, *heads), rope_x).transpose(1, 2)
        k = apply_rope(self.projk(mem).view(b, m, *heads), rope_mem).transpose(1, 2)
        v = self.projv(mem).view(b, m, *heads).transpose(1, 2)
        return self._merge(self.attend(q, k, v))
