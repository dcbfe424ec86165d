"""Reciprocal nearest neighbours: tie-breaking, blocks, masks, l2, against brute force and
synthetic ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from recon4d.errors import InputError
from recon4d.matching.reciprocal import grid_seeds, nearest_neighbours, reciprocal_nn


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def shifted_pair(h: int, w: int, dx: int, dy: int, seed: int = 0, dim: int = 24):
    """desc2 is desc1 moved by (dx, dy): pixel (x, y) of image 1 is (x + dx, y + dy) in image 2;
    uncovered pixels of image 2 get fresh random descriptors."""
    gen = torch.Generator().manual_seed(seed)
    desc1 = unit(torch.randn(h, w, dim, generator=gen))
    desc2 = unit(torch.randn(h, w, dim, generator=gen))
    desc2[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        desc1[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return desc1, desc2


def mutual_nn_pairs(f1: np.ndarray, f2: np.ndarray) -> set[tuple[int, int]]:
    """All mutual nearest neighbours (dot product) by the full similarity matrix."""
    sim = f1 @ f2.T
    fwd, bwd = sim.argmax(1), sim.argmax(0)
    return {(i, int(fwd[i])) for i in range(len(f1)) if bwd[fwd[i]] == i}


def test_nearest_neighbours_ties_go_to_lowest_index_across_blocks():
    base = unit(torch.randn(10, 4, generator=torch.Generator().manual_seed(1)))
    base[7] = base[2]  # exact duplicate in a later block
    base[9] = base[2]
    query = base[[2, 5]]
    for bs in (None, 3, 4, 10):
        assert nearest_neighbours(query, base, "dot", bs).tolist() == [2, 5]


@pytest.mark.parametrize("bs", [None, 7, 64])
def test_nearest_neighbours_l2_matches_kdtree(bs):
    gen = torch.Generator().manual_seed(2)
    base, query = torch.randn(300, 3, generator=gen), torch.randn(50, 3, generator=gen)
    expected = cKDTree(base.numpy()).query(query.numpy())[1]
    got = nearest_neighbours(query.double(), base.double(), "l2", bs)
    np.testing.assert_array_equal(got.numpy(), expected)


def test_shift_recovers_every_seed_in_the_overlap():
    h, w, dx, dy = 40, 56, 5, -3
    desc1, desc2 = shifted_pair(h, w, dx, dy)
    res = reciprocal_nn(desc1, desc2, subsample=8)
    xy1, xy2 = res.xy1(w), res.xy2(w)
    # ground truth: every grid seed whose shifted pixel exists in image 2 matches exactly there
    ys, xs = np.meshgrid(np.arange(4, h, 8), np.arange(4, w, 8), indexing="ij")
    inside = (xs + dx >= 0) & (xs + dx < w) & (ys + dy >= 0) & (ys + dy < h)
    matched = dict(zip(map(tuple, xy1.tolist()), map(tuple, xy2.tolist()), strict=True))
    for x, y in zip(xs[inside].tolist(), ys[inside].tolist(), strict=True):
        assert matched.get((x, y)) == (x + dx, y + dy)
    # output order: sorted by image-1 flat index, then image-2 index
    keys = res.idx1 * (h * w) + res.idx2
    assert torch.equal(keys, torch.sort(keys).values) and keys.unique().numel() == keys.numel()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_match_is_a_mutual_nearest_neighbour_and_blocks_agree(seed):
    gen = torch.Generator().manual_seed(seed)
    desc1 = unit(torch.randn(24, 32, 8, generator=gen))
    desc2 = unit(torch.randn(20, 36, 8, generator=gen))
    truth = mutual_nn_pairs(desc1.reshape(-1, 8).numpy(), desc2.reshape(-1, 8).numpy())
    results = [reciprocal_nn(desc1, desc2, subsample=4, block_size=bs) for bs in (None, 50, 2**13)]
    pairs = set(zip(results[0].idx1.tolist(), results[0].idx2.tolist(), strict=True))
    assert pairs and pairs <= truth
    for other in results[1:]:
        assert torch.equal(other.idx1, results[0].idx1)
        assert torch.equal(other.idx2, results[0].idx2)


def test_masks_restrict_seeds_and_candidates():
    h, w = 48, 64
    desc1, desc2 = shifted_pair(h, w, 0, 0, seed=3)
    mask1 = torch.zeros(h, w, dtype=torch.bool)
    mask1[8:40, 16:48] = True
    mask2 = torch.zeros(h, w, dtype=torch.bool)
    mask2[:, 32:] = True  # only the right half of image 2 may be matched
    res = reciprocal_nn(desc1, desc2, subsample=8, mask1=mask1, mask2=mask2)
    xy1, xy2 = res.xy1(w), res.xy2(w)
    assert len(xy1) > 0
    assert mask1[xy1[:, 1], xy1[:, 0]].all() and mask2[xy2[:, 1], xy2[:, 0]].all()
    # identical images: seeds inside both masks match themselves; others have no true partner
    both = mask1 & mask2
    seeds = grid_seeds(mask1, 8)
    expected = {int(s) for s in seeds if both.reshape(-1)[s]}
    assert expected <= set(res.idx1[res.idx1 == res.idx2].tolist())
    # within the masked sets every match is a mutual nearest neighbour
    p1, p2 = mask1.reshape(-1).nonzero()[:, 0], mask2.reshape(-1).nonzero()[:, 0]
    truth = mutual_nn_pairs(desc1.reshape(-1, 24)[p1].numpy(), desc2.reshape(-1, 24)[p2].numpy())
    truth_pix = {(int(p1[a]), int(p2[b])) for a, b in truth}
    assert set(zip(res.idx1.tolist(), res.idx2.tolist(), strict=True)) <= truth_pix


def test_grid_seeds_densify_for_small_masks():
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[20:26, 30:36] = True  # 6x6 px: no pixel of the 8-grid (4, 12, 20, ...) row/col 28, 36
    assert grid_seeds(mask, 8).numel() == 0
    seeds = grid_seeds(mask, 8, min_seeds=4)
    assert seeds.numel() >= 4 and mask.reshape(-1)[seeds].all()
    assert grid_seeds(torch.ones(16, 16, dtype=torch.bool), 8).tolist() == [4 * 16 + 4, 4 * 16 + 12,
                                                                          12 * 16 + 4, 12 * 16 + 12]


def test_l2_on_pointmaps_finds_the_shift():
    h, w = 32, 40
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    pts1 = torch.stack([xs, ys, (xs * 7 + ys * 13) % 5], -1).double()
    pts2 = pts1 + torch.tensor([3.0, 0.0, 0.0])  # image 2 sees the same points moved 3 px right
    res = reciprocal_nn(pts1, pts2, subsample=8, dist="l2")
    xy1, xy2 = res.xy1(w), res.xy2(w)
    assert len(xy1) > 0 and torch.equal(xy2, xy1 - torch.tensor([3, 0]))


def test_empty_mask_gives_empty_result_and_bad_input_is_an_error():
    desc1, desc2 = shifted_pair(16, 16, 0, 0)
    empty = torch.zeros(16, 16, dtype=torch.bool)
    assert reciprocal_nn(desc1, desc2, mask1=empty).idx1.numel() == 0
    assert reciprocal_nn(desc1, desc2, mask2=empty).idx2.numel() == 0
    with pytest.raises(InputError, match="mask1"):
        reciprocal_nn(desc1, desc2, mask1=torch.ones(8, 8, dtype=torch.bool))
    with pytest.raises(InputError, match="same D"):
        reciprocal_nn(desc1, desc2[..., :8])
    bad = desc1.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        reciprocal_nn(bad, desc2)
