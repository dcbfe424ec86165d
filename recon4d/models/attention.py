"""Multi-head self- and cross-attention with 2D RoPE on queries and keys (CroCo layout).

Parameter names (`qkv`, `proj`, `projq`, `projk`, `projv`) are those of the official checkpoints.
The softmax(q k^T / sqrt(d)) v product goes through `scaled_dot_product_attention` (fused, O(N)
memory); `attend` is the single place to override for code that needs the attention logits.
Cross-attention `attend` also takes a `CrossProbe` (Easi3R): it records per-key reductions of the
pre-softmax logits and applies the static-query / dynamic-key re-weighting, both without any
Nq x Nk tensor (see `recon4d.models.probes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from recon4d.models.rope import RopeCoefs, apply_rope


@dataclass
class CrossProbe:
    """What the cross-attention calls of one decoder side record or change (one per forward).

    Shapes: B batch, Nq query tokens, Nk key tokens. `static_query` B x Nq and `dynamic_key`
    B x Nk (bool) are set together or not at all: after the softmax, the weights from static
    queries to dynamic keys are zero, rows not renormalised. With `record`, each call appends
    to `key_logits` the mean over queries of the pre-softmax logits, float32 B x heads x Nk.
    """

    record: bool = False
    static_query: torch.Tensor | None = None
    dynamic_key: torch.Tensor | None = None
    key_logits: list[torch.Tensor] = field(default_factory=list)


def mean_query_logits(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    """mean over queries of (q . k) * scale per key: B x h x Nk float32, from B x h x N x d.

    mean_q (q . k) = (mean_q q) . k, so no Nq x Nk tensor is formed; elementwise products and
    sums keep float32 under autocast.
    """
    q_mean = q.float().mean(dim=2, keepdim=True)  # B x h x 1 x d
    return (k.float() * q_mean).sum(dim=-1) * scale


def reweighted_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                         static_query: torch.Tensor, dynamic_key: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T * scale) v with static-query -> dynamic-key weights zeroed, no renormalising.

    For a static query the output is the fused attention over values whose dynamic keys are
    zeroed (the softmax denominator still counts them); dynamic queries get plain attention.
    q, k, v: B x h x N x d; static_query B x Nq, dynamic_key B x Nk (bool).
    """
    plain = F.scaled_dot_product_attention(q, k, v, scale=scale)
    if not bool((static_query.any(dim=1) & dynamic_key.any(dim=1)).any()):
        return plain
    keep = (~dynamic_key)[:, None, :, None].to(v.dtype)
    masked = F.scaled_dot_product_attention(q, k, v * keep, scale=scale)
    return torch.where(static_query[:, None, :, None], masked, plain)


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
        self, x: torch.Tensor, mem: torch.Tensor, rope_x: RopeCoefs, rope_mem: RopeCoefs,
        probe: CrossProbe | None = None,
    ) -> torch.Tensor:
        b, n, _ = x.shape
        m = mem.shape[1]
        heads = (self.num_heads, self.head_dim)
        q = apply_rope(self.projq(x).view(b, n, *heads), rope_x).transpose(1, 2)
        k = apply_rope(self.projk(mem).view(b, m, *heads), rope_mem).transpose(1, 2)
        v = self.projv(mem).view(b, m, *heads).transpose(1, 2)
        return self._merge(self.attend(q, k, v, probe))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               probe: CrossProbe | None = None) -> torch.Tensor:
        """The attention product, recording and re-weighting as `probe` asks (None: plain)."""
        if probe is None:
            return super().attend(q, k, v)
        if probe.record:
            probe.key_logits.append(mean_query_logits(q, k, self.scale))
        if probe.dynamic_key is None:
            return super().attend(q, k, v)
        return reweighted_attention(q, k, v, self.scale, probe.static_query, probe.dynamic_key)
