"""Focal length of a pinhole camera from a pointmap in its own frame (Weiszfeld or median votes)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from recon4d.geometry.cameras import pixel_grid

WEISZFELD_ITERS = 10
# focal range (units of `focal_base`) an alignment keeps to, at initialisation and in the fast
# solver's focal steps: about 170 to 6 degrees of field of view; degenerate predictions (e.g.
# points on both sides of the camera, as random weights give) would otherwise drive f to 0 or
# infinity and the objective to NaN
FOCAL_RANGE = (0.1, 10.0)


def focal_base(height: int, width: int) -> float:
    """Focal of a 60 degree field of view on the longer side: the unit of `min/max_focal`."""
    return max(height, width) / (2 * math.tan(math.radians(30)))


def estimate_focal(pts3d: Tensor, pp: Tensor | None = None, mode: str = "weiszfeld",
                   min_focal: float = 0.0, max_focal: float | None = None) -> Tensor:
    """Focal (B,) of each (B, H, W, 3) camera-frame pointmap, principal point (B, 2) or centre.

    `weiszfeld` minimises sum |p - f r| over centred pixels p and rays r = (x/z, y/z) by
    re-weighted least squares; `median` takes the median of the per-axis votes u z / x, v z / y.
    The result is clipped to [min_focal, max_focal] * `focal_base(H, W)`.
    """
    b, h, w, _ = pts3d.shape
    if pp is None:
        pp = pts3d.new_tensor([w / 2, h / 2]).expand(b, 2)
    uv = pixel_grid(h, w, like=pts3d).reshape(1, -1, 2) - pp.reshape(-1, 1, 2)
    pts = pts3d.reshape(b, -1, 3)
    if mode == "median":
        votes = torch.cat(((uv[..., 0] * pts[..., 2]) / pts[..., 0],
                           (uv[..., 1] * pts[..., 2]) / pts[..., 1]), dim=-1)
        focal = torch.nanmedian(votes, dim=-1).values
    elif mode == "weiszfeld":
        rays = (pts[..., :2] / pts[..., 2:3]).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
        dot_rp = (rays * uv).sum(-1)
        dot_rr = rays.square().sum(-1)
        focal = dot_rp.mean(1) / dot_rr.mean(1)
        for _ in range(WEISZFELD_ITERS):
            dist = (uv - focal.reshape(-1, 1, 1) * rays).norm(dim=-1)
            wgt = dist.clip(min=1e-8).reciprocal()
            focal = (wgt * dot_rp).mean(1) / (wgt * dot_rr).mean(1)
    else:
        raise ValueError(f"focal mode must be 'weiszfeld' or 'median', not {mode!r}")
    base = focal_base(h, w)
    upper = math.inf if max_focal is None else max_focal * base
    return focal.clip(min=min_focal * base, max=upper)
