"""2D rotary position embedding (RoPE) of the CroCo/DUSt3R attention, with cached cos/sin tables.

Each head's channels are split in two halves rotated by the token's row (first half) and column
(second half); inside a half of size h, channel i pairs with i + h/2 ("rotate half") and turns by
the angle p * base^(-2i/h), p the integer patch index.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RopeCoefs:
    """Per-token rotation coefficients, shape B x N x head_dim, reusable by every block.

    `sin` carries the sign of the rotation: negative on the first quarter of each half, so that
    rotated = t * cos + (t with the two quarters of each half swapped) * sin.
    """

    cos: torch.Tensor
    sin: torch.Tensor


class RoPE2D:
    """Builds `RopeCoefs` for integer (row, col) token positions; tables grow on demand."""

    def __init__(self, base: float = 100.0) -> None:
        self.base = float(base)
        self._tables: dict[tuple[int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    def _table(self, half: int, length: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        """float32 (cos, signed sin) of shape length x half for positions 0..length-1."""
        key = (half, device)
        cached = self._tables.get(key)
        if cached is not None and cached[0].shape[0] >= length:
            return cached
        length = max(length, 2 * cached[0].shape[0] if cached is not None else 64)
        inv_freq = 1.0 / (self.base ** (torch.arange(0, half, 2, device=device).float() / half))
        angles = torch.outer(torch.arange(length, device=device, dtype=torch.float32), inv_freq)
        cos, sin = angles.cos(), angles.sin()
        table = (torch.cat([cos, cos], dim=1), torch.cat([-sin, sin], dim=1))
        self._tables[key] = table
        return table

    def coefs(self, pos: torch.Tensor, head_dim: int) -> RopeCoefs:
        """float32 coefficients for positions `pos` (B x N x 2 int64, (row, col))."""
        if head_dim % 4:
            raise ValueError(f"RoPE2D needs a head dimension divisible by 4, got {head_dim}")
        cos_t, sin_t = self._table(head_dim // 2, int(pos.max()) + 1, pos.device)
        rows, cols = pos[..., 0], pos[..., 1]
        return RopeCoefs(torch.cat([cos_t[rows], cos_t[cols]], dim=-1),
                         torch.cat([sin_t[rows], sin_t[cols]], dim=-1))


def apply_rope(t: torch.Tensor, coefs: RopeCoefs) -> torch.Tensor:
    """Rotate `t` (B x N x ... x head_dim, token axis 1) by per-token coefficients (new tensor).

    The coefficients are cast to t's dtype (a no-op in float32, e.g. bf16 under autocast).
    """
    shape = (t.shape[0], t.shape[1]) + (1,) * (t.dim() - 3) + (t.shape[-1],)
    cos, sin = coefs.cos.to(t.dtype).view(shape), coefs.sin.to(t.dtype).view(shape)
    quarters = (2, 2, t.shape[-1] // 4)  # (half: row/col, quarter within the half, channel)
    out = t * cos
    t4, out4, sin4 = (x.unflatten(-1, quarters) for x in (t, out, sin))
    out4[..., 0, :].addcmul_(t4[..., 1, :], sin4[..., 0, :])
    out4[..., 1, :].addcmul_(t4[..., 0, :], sin4[..., 1, :])
    return out
