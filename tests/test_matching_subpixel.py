"""Sub-pixel refinement of matches: the parabola vertex by hand, and a known sub-pixel shift of a
smooth descriptor field recovered from integer matches."""

from __future__ import annotations

import math

import pytest
import torch

from recon4d.matching.pipeline import match_descriptors
from recon4d.matching.subpixel import parabola_vertex, refine_matches
from recon4d.options import MatchOptions

H, W, PERIOD = 32, 40, 12.0  # pixels; the field varies smoothly at the scale of a pixel


def field(xy: torch.Tensor, directions: int = 6) -> torch.Tensor:
    """Unit descriptors (..., 2K) of positions xy (..., 2): cos/sin of plane waves of one period
    in K evenly spread directions, so the similarity peak is round (no x-y cross term)."""
    angles = torch.arange(directions, dtype=torch.float64) * math.pi / directions
    freq = 2 * math.pi / PERIOD * torch.stack((angles.cos(), angles.sin()), 1)  # (K, 2)
    phase = xy.double() @ freq.T + torch.arange(directions, dtype=torch.float64)
    return torch.cat((phase.cos(), phase.sin()), -1) / math.sqrt(directions)


def shifted_maps(shift: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """desc1 at every pixel p, desc2 at pixel q describes the point q - shift: pixel p of image 1
    lies at p + shift in image 2."""
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    grid = torch.stack((xs, ys), -1).double()
    return field(grid).float(), field(grid - torch.tensor(shift)).float()


def test_parabola_vertex_by_hand():
    # through (-1, 0.5), (0, 1), (1, 0): f = -0.75 x^2 - 0.25 x + 1, vertex at -1/6;
    # symmetric -> 0; a minimum (curvature > 0) -> not moved;
    # through (-1, 0), (0, 1), (1, 1.2): vertex at 0.75, clamped to 0.5
    got = parabola_vertex(torch.tensor([0.5, 0.0, 0.2, 0.0]), torch.tensor([1.0, 1.0, 0.0, 1.0]),
                          torch.tensor([0.0, 0.0, 0.5, 1.2]))
    assert got.tolist() == pytest.approx([-1 / 6, 0.0, 0.0, 0.5])


@pytest.mark.parametrize("shift", [(0.3, -0.2), (-0.45, 0.1), (0.0, 0.0)])
def test_refinement_recovers_a_known_subpixel_shift(shift):
    desc1, desc2 = shifted_maps(shift)
    ys, xs = torch.meshgrid(torch.arange(4, H - 4, 3), torch.arange(4, W - 4, 3), indexing="ij")
    xy1 = torch.stack((xs.reshape(-1), ys.reshape(-1)), 1)
    truth = xy1.double() + torch.tensor(shift, dtype=torch.float64)
    xy2 = truth.round().long()  # the integer match a reciprocal search gives
    refined = refine_matches(desc1, desc2, xy1, xy2)
    assert refined.dtype == torch.float64
    assert (refined - truth).abs().max() < 0.03
    if any(shift):
        assert (xy2 - truth).abs().max() > 0.15  # the integer match was off


def test_an_axis_at_the_image_edge_is_not_moved():
    desc1, desc2 = shifted_maps((0.3, 0.3))
    xy1 = torch.tensor([[W - 1, 5], [5, 0]])
    xy2 = torch.tensor([[W - 1, 5], [5, 0]])
    refined = refine_matches(desc1, desc2, xy1, xy2)
    assert refined[0, 0] == W - 1 and refined[1, 1] == 0  # no neighbour on one side
    assert refined[0, 1] == pytest.approx(5.3, abs=0.03)
    assert refined[1, 0] == pytest.approx(5.3, abs=0.03)


def test_match_descriptors_returns_subpixel_points_only_when_asked():
    desc1, desc2 = shifted_maps((0.3, -0.2))
    pred1 = {"desc": desc1, "desc_conf": torch.ones(H, W)}
    pred2 = {"desc": desc2, "desc_conf": torch.ones(H, W)}
    plain = MatchOptions(border=0, max_3d_error=None)
    xy1, xy2, _, _ = match_descriptors(pred1, pred2, None, None, plain)
    sub1, sub2, _, _ = match_descriptors(pred1, pred2, None, None,
                                         MatchOptions(border=0, max_3d_error=None, subpixel=True))
    assert xy2.dtype == torch.int64 and sub2.dtype == torch.float64
    assert torch.equal(sub1, xy1) and len(xy1) > 10
    inner = ((xy2 > 0) & (xy2 < torch.tensor([W - 1, H - 1]))).all(1)
    truth = xy1[inner].double() + torch.tensor([0.3, -0.2], dtype=torch.float64)
    assert (sub2[inner] - truth).norm(dim=1).mean() < 0.1 * (xy2[inner] - truth).norm(dim=1).mean()
