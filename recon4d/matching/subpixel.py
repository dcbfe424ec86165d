"""Sub-pixel refinement of matches: a parabola through the descriptor similarity around each match.

A reciprocal match pairs integer pixels, so its end in image 2 is up to half a pixel from where
image 1's point really lands. Holding the end in image 1 fixed, the similarity of its descriptor
to image 2's at the match and its two neighbours along x (and along y) is fitted by a parabola
whose vertex is the sub-pixel position (an addition over MASt3R, which keeps integer pixels).
"""

from __future__ import annotations

import torch

MAX_SHIFT = 0.5  # pixels: a reciprocal match is the best integer pixel, so the peak is this near


def parabola_vertex(left: torch.Tensor, centre: torch.Tensor, right: torch.Tensor
                    ) -> torch.Tensor:
    """Abscissa of the vertex of the parabola through (-1, left), (0, centre), (1, right),
    clamped to +-MAX_SHIFT; 0 where the three values do not make a maximum (curvature >= 0)."""
    curvature = left - 2 * centre + right
    peaked = curvature < 0
    vertex = 0.5 * (left - right) / torch.where(peaked, curvature, torch.ones_like(curvature))
    return torch.where(peaked, vertex, torch.zeros_like(vertex)).clamp(-MAX_SHIFT, MAX_SHIFT)


def refine_matches(desc1: torch.Tensor, desc2: torch.Tensor, xy1: torch.Tensor,
                   xy2: torch.Tensor) -> torch.Tensor:
    """Sub-pixel (x, y) float64 (M, 2) in image 2 of matches `xy1` -> `xy2` (integer (M, 2)),
    from descriptor maps (H, W, D); an axis whose neighbour falls outside image 2 is not moved."""
    height, width = desc2.shape[:2]
    xy1, xy2 = xy1.to(desc1.device), xy2.to(desc2.device)
    query = desc1[xy1[:, 1], xy1[:, 0]].double()

    def similarity(dx: int, dy: int) -> torch.Tensor:
        x = (xy2[:, 0] + dx).clamp(0, width - 1)
        y = (xy2[:, 1] + dy).clamp(0, height - 1)
        return (desc2[y, x].double() * query).sum(dim=-1)

    centre = similarity(0, 0)
    shift = torch.stack((parabola_vertex(similarity(-1, 0), centre, similarity(1, 0)),
                         parabola_vertex(similarity(0, -1), centre, similarity(0, 1))), dim=1)
    inside = torch.stack(((xy2[:, 0] > 0) & (xy2[:, 0] < width - 1),
                          (xy2[:, 1] > 0) & (xy2[:, 1] < height - 1)), dim=1)
    return (xy2.double() + torch.where(inside, shift, torch.zeros_like(shift))).cpu()
