"""Mover pixels from geometric consistency (recon4d.dynamics.consistency): the relative
disagreement by hand, the robust threshold on drawn values with known outliers, and the frame
masks on hand-made pixel sets."""

from __future__ import annotations

import torch

from recon4d.dynamics.consistency import (
    above_scale,
    disowned,
    frame_movers,
    grow_mask,
    inconsistent,
    relative_disagreement,
)


def test_relative_disagreement_is_the_distance_over_the_reference_distance():
    ref = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 4.0]])
    moved = torch.tensor([[2.0, 0.2, 0.0], [0.0, 3.0, 4.0]])
    torch.testing.assert_close(relative_disagreement(ref, moved), torch.tensor([0.1, 0.0]))


def test_only_the_displaced_matches_are_flagged():
    gen = torch.Generator().manual_seed(0)
    static = 0.004 + 0.0005 * torch.randn(900, generator=gen)
    moved = 0.05 + 0.02 * torch.rand(100, generator=gen)  # 10 % of the matches moved
    values = torch.cat((static, moved))[torch.randperm(1000, generator=gen)]
    flagged = inconsistent(values)
    assert torch.equal(flagged, values > 0.04)  # no static value is above 0.04, no mover below


def test_many_movers_do_not_widen_the_threshold():
    """45 % of the matches moved: a median-based spread (median + 4 x 1.4826 MAD = 0.042 on
    these values) would keep a quarter of them; the 20th percentile stays on the static ones
    (4.5 x it = 0.018, the largest static value 0.014, the smallest mover 0.020)."""
    gen = torch.Generator().manual_seed(0)
    static = (0.003 * torch.randn(550, 3, generator=gen)).norm(dim=-1)  # a 3D error's norm
    moved = 0.02 + 0.08 * torch.rand(450, generator=gen)
    flagged = inconsistent(torch.cat((static, moved)))
    assert flagged[550:].all() and not flagged[:550].any()


def test_nothing_is_flagged_below_the_floor_or_when_most_disagree():
    exact = torch.cat((1e-9 * (50 + torch.arange(99.0) / 10), torch.tensor([1e-6])))
    assert not inconsistent(exact).any()
    assert torch.equal(inconsistent(exact, floor=0.0), exact == 1e-6)  # the floor keeps it
    # (near-exact: 5e-8 to 6e-8, and one 1e-6 above 4.5 x the 20th percentile, 2.3e-7)
    most = torch.cat((torch.full((40,), 0.004), torch.full((60,), 0.2)))
    assert not inconsistent(most).any()  # 60 % disagree: the pose is wrong, not the scene
    assert not inconsistent(torch.zeros(0)).any()


def test_a_pose_most_matches_disagree_with_is_disowned_and_a_reference_sets_the_scale():
    most = torch.cat((torch.full((40,), 0.004), torch.full((60,), 0.2)))
    assert disowned(above_scale(most)) and not disowned(above_scale(most[30:50]))  # 60 % / 50 %
    assert not disowned(above_scale(torch.zeros(0)))
    # scaled on the first 40 alone (4.5 x 0.004 = 0.018): the 60 above it are flagged
    trusted = torch.arange(100) < 40
    assert torch.equal(above_scale(most, trusted), most > 0.1)
    assert not above_scale(most, torch.zeros(100, dtype=torch.bool)).any()


def test_grow_mask_is_a_square_max_filter():
    mask = torch.zeros(5, 7, dtype=torch.bool)
    mask[2, 3] = True
    grown = grow_mask(mask, 1)
    assert int(grown.sum()) == 9 and bool(grown[1:4, 2:5].all())
    assert int(grow_mask(mask, 2).sum()) == 25


def flat(*pixels: tuple[int, int], width: int = 7) -> torch.Tensor:
    return torch.tensor([v * width + u for u, v in pixels], dtype=torch.long)


def mask_of(*pixels: tuple[int, int], shape=(5, 7)) -> torch.Tensor:
    mask = torch.zeros(shape, dtype=torch.bool)
    for u, v in pixels:
        mask[v, u] = True
    return mask


def test_flagged_pixels_grow_and_known_movers_close():
    none = flat()
    grown = frame_movers(flat((3, 2)), none, none, none, (5, 7))
    assert torch.equal(grown, mask_of(*[(u, v) for u in (2, 3, 4) for v in (1, 2, 3)]))
    # two known pixels with a one-pixel gap: the gap is filled, nothing around them
    closed = frame_movers(none, flat((2, 2), (4, 2)), none, none, (5, 7))
    assert torch.equal(closed, mask_of((2, 2), (3, 2), (4, 2)))
    assert torch.equal(frame_movers(flat((3, 2)), none, none, none, (5, 7), grow=0),
                       mask_of((3, 2)))


def test_occluding_pixels_count_unless_a_valid_match_explains_them():
    none = flat()
    occluding = flat((1, 1), (5, 3))
    explained = flat((6, 4))  # a valid match next to (5, 3)
    movers = frame_movers(none, none, occluding, explained, (5, 7))
    assert torch.equal(movers, mask_of((1, 1)))
