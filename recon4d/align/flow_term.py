"""The flow term (MonST3R's L_flow, spec 2.2 and 8.2): ego-flow of the current cameras and depths
against precomputed optical flow, on static pixels only.

For edge (i, j) and pixel p of frame i (on the flow grid, see `recon4d.align.video`): X = T_i
(D_i(p) K_i^-1 p), p' = pi(K_j T_j^-1 X), residual r = p' - p - F_ij(p) per component. Loss:
smooth-L1 (beta 1) over the components of static pixels whose loss is below the pixel threshold,
divided by their count (+1e-6, spec 8.2). Adam differentiates it (`FlowTerm.chunk_sums`); the
fast solver takes `FlowTerm.quadratic`: IRLS weights min(1, 1/|r|) (the smooth-L1 majoriser)
and the Jacobian of r in the poses with depths and focals fixed,
d r = P R_j^T ([X]x, -I) (d_j - d_i), P the 2x3 projection derivative: a `pair_quadratic`.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from recon4d.align.pose_terms import PoseQuadratic, pair_quadratic
from recon4d.geometry.rotations import skew

CHUNK_PIXELS = 1 << 20  # flow pixels per edge chunk
EPS = 1e-6


class FlowTerm:
    """Optical flows of the predictions' edges and the static pixels they are compared on."""

    def __init__(self, edges: Tensor, flows: Tensor, stride: int, masks: Tensor | None,
                 pixel_threshold: float, height: int, width: int) -> None:
        self.edges, self.flows, self.stride = edges, flows, stride
        self.threshold = pixel_threshold
        ys = torch.arange(0, height, stride, device=flows.device)
        xs = torch.arange(0, width, stride, device=flows.device)
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
        self.pixels = grid.reshape(-1, 2).double()  # (P, 2) (u, v)
        self.static = None if masks is None else ~masks[:, ::stride, ::stride].reshape(
            masks.shape[0], -1)
        self.chunk = max(1, CHUNK_PIXELS // self.pixels.shape[0])

    def grid_depths(self, depths: Tensor) -> Tensor:
        """(N, P) depths at the flow grid's pixels."""
        return depths[:, ::self.stride, ::self.stride].reshape(depths.shape[0], -1)

    def _residuals(self, sl: slice, rot: Tensor, trans: Tensor, focals: Tensor, pps: Tensor,
                   depth: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Residuals (k, P, 2), kept components (k, P, 2), world points (k, P, 3) and camera-j
        points (k, P, 3) of the edges `sl`."""
        i, j = self.edges[sl, 0], self.edges[sl, 1]
        dt = rot.dtype
        rays = (self.pixels.to(dt)[None] - pps[i][:, None].to(dt)) / focals[i][:, None, None]
        cam = torch.cat((rays, torch.ones_like(rays[..., :1])), -1) * depth[i][..., None].to(dt)
        world = cam @ rot[i].transpose(1, 2) + trans[i][:, None]
        seen = (world - trans[j][:, None]) @ rot[j]
        z = seen[..., 2:]
        front = z[..., 0] > EPS * depth[i].to(dt).clamp(min=EPS)
        uv = focals[j][:, None, None] * seen[..., :2] / torch.where(front[..., None], z, 1.0)
        flow = self.flows[sl].reshape(len(i), -1, 2).to(dt)
        res = uv + pps[j][:, None].to(dt) - self.pixels.to(dt)[None] - flow
        valid = front & (depth[i] > 0) & torch.isfinite(flow).all(-1)
        if self.static is not None:
            valid &= self.static[i]
        res = torch.where(valid[..., None], res, 0.0)
        kept = valid[..., None] & (_smooth_l1(res) < self.threshold)
        return res, kept, world, seen

    def chunk_sums(self, rot: Tensor, trans: Tensor, focals: Tensor, pps: Tensor,
                   depth: Tensor) -> Iterator[tuple[Tensor, int]]:
        """Per edge chunk: sum of the kept smooth-L1 losses (differentiable) and their count.
        `depth` (N, P) from `grid_depths`."""
        for start in range(0, len(self.edges), self.chunk):
            sl = slice(start, start + self.chunk)
            res, kept, _, _ = self._residuals(sl, rot, trans, focals, pps, depth)
            yield (_smooth_l1(res) * kept).sum(), int(kept.sum())

    def totals(self, rot: Tensor, trans: Tensor, focals: Tensor, pps: Tensor, depth: Tensor
               ) -> tuple[float, int]:
        """Sum of the kept components' smooth-L1 losses and their count (no gradient);
        L_flow = sum / (count + EPS)."""
        with torch.no_grad():
            parts = list(self.chunk_sums(rot, trans, focals, pps, depth))
        return float(sum(s for s, _ in parts)), sum(k for _, k in parts)

    def quadratic(self, rot: Tensor, trans: Tensor, focals: Tensor, pps: Tensor,
                  depth: Tensor, scale: float) -> tuple[PoseQuadratic, float]:
        """Model of `scale` x 2 x the IRLS majoriser of L_flow at the poses, and L_flow."""
        moments, firsts, total, const, count = [], [], 0.0, 0.0, 0
        for start in range(0, len(self.edges), self.chunk):
            sl = slice(start, start + self.chunk)
            res, kept, world, seen = self._residuals(sl, rot, trans, focals, pps, depth)
            z = seen[..., 2].clamp(min=EPS)
            f = focals[self.edges[sl, 1]][:, None]
            proj = torch.zeros(*z.shape, 2, 3, dtype=z.dtype, device=z.device)
            proj[..., 0, 0] = proj[..., 1, 1] = f / z
            proj[..., :, 2] = -f[..., None] * seen[..., :2] / z[..., None].square()
            lever = torch.cat((skew(world), -torch.eye(3, dtype=z.dtype, device=z.device)
                               .expand(*world.shape[:2], 3, 3)), dim=-1)  # (k, P, 3, 6)
            rj = rot[self.edges[sl, 1]].transpose(1, 2)[:, None]
            jac = proj @ rj @ lever  # (k, P, 2, 6)
            omega = kept * (1 / res.abs().clamp(min=1.0))
            moments.append(torch.einsum("kpci,kpc,kpcj->kij", jac, omega, jac))
            firsts.append(torch.einsum("kpci,kpc,kpc->ki", jac, omega, res))
            const += float((omega * res.square()).sum())
            total += float((_smooth_l1(res) * kept).sum())
            count += int(kept.sum())
        factor = scale / (count + EPS)
        model = pair_quadratic(self.edges, factor * torch.cat(moments), factor * torch.cat(firsts),
                               torch.tensor(factor * const), rot, trans)
        return model, total / (count + EPS)


def _smooth_l1(res: Tensor) -> Tensor:
    """Smooth-L1 with beta 1, per component."""
    a = res.abs()
    return torch.where(a < 1, 0.5 * a.square(), a - 0.5)
