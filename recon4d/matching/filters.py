"""Per-match scores and keep-masks: image border, descriptor confidence, descriptor similarity,
3D consistency.

Every function takes matches as integer (x, y) pixel arrays `xy1`, `xy2` of shape (M, 2) and
returns one value per match, so filters combine with `&`.
"""

from __future__ import annotations

import torch

from recon4d.options import CONF_MODES


def sample(map_: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Values of a (H, W, ...) map at integer pixels `xy` (M, 2) -> (M, ...)."""
    return map_[xy[:, 1].to(map_.device), xy[:, 0].to(map_.device)]


def inside_border(xy: torch.Tensor, shape: tuple[int, int], border: int) -> torch.Tensor:
    """True for pixels at least `border` px away from every edge of an (H, W) image."""
    height, width = shape
    x, y = xy[:, 0], xy[:, 1]
    return (x >= border) & (x < width - border) & (y >= border) & (y < height - border)


def match_confidence(conf1: torch.Tensor, conf2: torch.Tensor, xy1: torch.Tensor,
                     xy2: torch.Tensor, mode: str = "min") -> torch.Tensor:
    """Confidence of each match from the two `desc_conf` maps (H, W): the smaller of the two
    (`min`, MASt3R's two-image helper) or their geometric mean (`geometric`, its sparse GA)."""
    q1, q2 = sample(conf1, xy1), sample(conf2, xy2)
    if mode == "min":
        return torch.minimum(q1, q2)
    if mode == "geometric":
        return torch.sqrt(q1 * q2)
    raise ValueError(f"confidence mode must be one of {CONF_MODES}, got {mode!r}")


def descriptor_similarity(desc1: torch.Tensor, desc2: torch.Tensor, xy1: torch.Tensor,
                          xy2: torch.Tensor) -> torch.Tensor:
    """Dot product of the two descriptors of each match (cosine for unit descriptors)."""
    return (sample(desc1, xy1) * sample(desc2, xy2)).sum(dim=-1)


def relative_3d_error(pts1: torch.Tensor, pts2_in_1: torch.Tensor, xy1: torch.Tensor,
                      xy2: torch.Tensor) -> torch.Tensor:
    """Distance between the two 3D points a match links, relative to the first one's distance
    from camera 1. Both maps come from one forward pass (`pred1.pts3d` and
    `pred2.pts3d_in_other_view`, the same frame), so a true match has a small value."""
    a, b = sample(pts1, xy1), sample(pts2_in_1, xy2)
    return (a - b).norm(dim=-1) / a.norm(dim=-1).clamp_min(1e-12)
