"""SLAM3R's multi-view decoder block: DUSt3R's block with a cross-attention to several views.

Each own view attends to every view of the other side separately (one softmax per other view,
`proj` with its bias applied to each result); the results are merged by an element-wise maximum
before the residual add. With one other view this is exactly the pair network's block.
"""

from __future__ import annotations

import torch

from recon4d.models.attention import CrossAttention
from recon4d.models.blocks import DecoderBlock
from recon4d.models.rope import RopeCoefs, apply_rope


class MaxMergedCrossAttention(CrossAttention):
    """Cross-attention of V own views to M other views, max-merged over the M views."""

    def forward(self, x: torch.Tensor, mem: torch.Tensor, rope_x: RopeCoefs,
                rope_mem: RopeCoefs) -> torch.Tensor:
        """x V x B x N x C, mem M x B x Nm x C -> V x B x N x C; rope coefficients for the
        flattened (V*B) and (M*B) token rows."""
        v, b, n, c = x.shape
        m, _, nm, _ = mem.shape
        heads = (self.num_heads, self.head_dim)
        q = apply_rope(self.projq(x.flatten(0, 1)).view(v * b, n, *heads), rope_x)
        flat_mem = mem.flatten(0, 1)
        k = apply_rope(self.projk(flat_mem).view(m * b, nm, *heads), rope_mem)
        val = self.projv(flat_mem).view(m * b, nm, *heads)

        def pairs(t: torch.Tensor, own: bool) -> torch.Tensor:
            """Rows (own view, other view, window) of every pair, heads first."""
            tokens_heads = t.shape[1:]  # N x heads x head_dim
            t = t.view(*((v, 1, b) if own else (1, m, b)), *tokens_heads)
            t = t.expand(v, m, b, *tokens_heads)
            return t.reshape(v * m * b, *tokens_heads).transpose(1, 2)

        out = self._merge(self.attend(pairs(q, True), pairs(k, False), pairs(val, False)))
        return out.view(v, m, b, n, c).amax(dim=1)


class MultiviewDecoderBlock(DecoderBlock):
    """`MultiviewDecoderBlock_max`: self-attention per view, max-merged cross-attention, MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, norm_mem: bool) -> None:
        super().__init__(dim, num_heads, mlp_ratio, norm_mem, MaxMergedCrossAttention)

    def forward(self, x: torch.Tensor, others: torch.Tensor, rope_x: RopeCoefs,
                rope_others: RopeCoefs) -> torch.Tensor:
        """New tokens V x B x S x D of this side's views `x` from the other side's `others`
        (M x B x S x D, unchanged); views of one side do not attend to each other."""
        flat = x.flatten(0, 1)
        x = (flat + self.attn(self.norm1(flat), rope_x)).view_as(x)
        x = x + self.cross_attn(self.norm2(x), self.norm_y(others), rope_x, rope_others)
        return x + self.mlp(self.norm3(x))
