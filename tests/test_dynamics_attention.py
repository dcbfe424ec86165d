"""Easi3R attention masks: aggregation, k-means refinement, multi-Otsu and the composed masks.

Truths: a per-frame loop over stacked maps (numpy mean/std), brute-force enumeration of Otsu
thresholds, scikit-image's multi-Otsu, hand-computed histograms, planted clusters and a planted
moving region.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from recon4d.dynamics.aggregation import aggregate_attention, dynamic_map
from recon4d.dynamics.attention import attention_masks, upsample_maps
from recon4d.dynamics.clusters import cluster_refine, kmeans
from recon4d.dynamics.masks import MotionMasks
from recon4d.dynamics.otsu import adaptive_threshold, class_variance_table, multiotsu_bins
from recon4d.errors import InputError


def symmetric_complete(n: int) -> np.ndarray:
    """All ordered pairs (i, j), i != j."""
    return np.array([(i, j) for i in range(n) for j in range(n) if i != j], dtype=np.int64)


def random_maps(n_edges: int, h: int = 3, w: int = 4, c: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n_edges, h, w, c)).astype(np.float32),
            rng.normal(size=(n_edges, h, w, c)).astype(np.float32))


# --- aggregation ----------------------------------------------------------------------------

def test_aggregation_matches_a_per_frame_loop() -> None:
    edges = np.array([(0, 1), (1, 0), (1, 2), (2, 1), (0, 2), (2, 0), (3, 0), (0, 3), (3, 1),
                      (1, 3), (2, 3), (3, 2), (2, 3)])
    maps1, maps2 = random_maps(len(edges))
    stats = aggregate_attention(torch.from_numpy(edges), torch.from_numpy(maps1),
                                torch.from_numpy(maps2), n_frames=4)
    for f in range(4):
        for maps, side, mean, std in ((maps1, 1, stats.k_i_mean, stats.k_i_std),
                                      (maps2, 0, stats.k_j_mean, stats.k_j_std)):
            stack = maps[edges[:, side] == f].astype(np.float64)
            stack[:, 0, 0] = (stack[:, 0, 1] + stack[:, 1, 0]) / 2
            np.testing.assert_allclose(mean[f].numpy(), stack.mean(0), atol=1e-6)
            np.testing.assert_allclose(std[f].numpy(), stack.std(0, ddof=1), atol=1e-6)


def test_dynamic_map_is_per_frame_normalised_and_finite_on_constant_maps() -> None:
    edges = symmetric_complete(3)
    maps = np.ones((len(edges), 2, 2, 3), np.float32)
    dyn = dynamic_map(aggregate_attention(torch.from_numpy(edges), torch.from_numpy(maps),
                                          torch.from_numpy(maps), n_frames=3))
    assert dyn.shape == (3, 2, 2)
    assert torch.isfinite(dyn).all() and (dyn == 0).all()


@pytest.mark.parametrize("edges, n_frames, match", [
    ([(0, 1), (1, 0)], 2, "at least 3 frames"),
    ([(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)], 4, "frame 0 is view 1 of 1 and view 2 "
     "of 1 edges .2 frames are short.*symmetric"),  # a chain: its end frames have one neighbour
    ([(0, 1), (0, 2), (0, 3), (1, 2), (2, 1)], 4, "frame 0 is view 1 of 3 and view 2 of 0.*"
     "oneref"),
])
def test_graphs_leaving_a_frame_short_are_refused(edges, n_frames, match) -> None:
    edges = np.array(edges)
    maps1, maps2 = random_maps(len(edges))
    with pytest.raises(InputError, match=match):
        aggregate_attention(torch.from_numpy(edges), torch.from_numpy(maps1),
                            torch.from_numpy(maps2), n_frames)


def test_a_frame_in_one_edge_per_side_is_named() -> None:
    edges = np.concatenate([symmetric_complete(3), symmetric_complete(3), [(3, 0), (0, 3)]])
    maps1, maps2 = random_maps(len(edges))
    with pytest.raises(InputError, match="frame 3 is view 1 of 1 and view 2 of 1.*symmetric"):
        aggregate_attention(torch.from_numpy(edges), torch.from_numpy(maps1),
                            torch.from_numpy(maps2), n_frames=4)


# --- k-means and refinement -----------------------------------------------------------------

def planted_blobs(n_per: int = 50, k: int = 6, dim: int = 32, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    centres = 20 * torch.randn(k, dim, generator=gen)
    truth = torch.arange(k).repeat_interleave(n_per)
    return centres[truth] + torch.randn(len(truth), dim, generator=gen), truth


def same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to renaming the labels."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_kmeans_recovers_planted_clusters_deterministically() -> None:
    points, truth = planted_blobs()
    first = kmeans(points, 6, seed=3)
    assert same_partition(first.labels, truth)
    for c in range(6):
        members = points[first.labels == c]
        torch.testing.assert_close(first.centers[c], members.mean(0), atol=1e-4, rtol=1e-5)
    assert torch.equal(kmeans(points, 6, seed=3).labels, first.labels)


def test_kmeans_with_duplicate_points_has_no_nan() -> None:
    points = torch.tensor([[0.0, 0.0]] * 5 + [[1.0, 1.0]] * 5)
    result = kmeans(points, 4, seed=0)
    assert torch.isfinite(result.centers).all()
    assert same_partition(result.labels, torch.tensor([0] * 5 + [1] * 5))


def test_cluster_refine_gives_each_token_its_cluster_mean() -> None:
    points, truth = planted_blobs(n_per=12, k=3, dim=8)
    features = points.view(3, 3, 4, 8)  # 3 frames of 3 x 4 tokens, clusters across frames
    dynamic = torch.rand(3, 3, 4, generator=torch.Generator().manual_seed(1))
    refined = cluster_refine(dynamic, features, clusters=3, seed=0)
    means = torch.stack([dynamic.reshape(-1)[truth == c].mean() for c in range(3)])
    expected = means[truth].view(3, 3, 4)
    low = expected.amin(dim=(1, 2), keepdim=True)
    high = expected.amax(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(refined, (expected - low) / (high - low + 1e-6))


def test_fewer_tokens_than_clusters_makes_each_token_a_cluster() -> None:
    dynamic = torch.tensor([[[0.2, 0.8]], [[0.5, 0.1]]])
    features = torch.randn(2, 1, 2, 16, generator=torch.Generator().manual_seed(0))
    refined = cluster_refine(dynamic, features, clusters=64)
    torch.testing.assert_close(refined, torch.tensor([[[0.0, 1.0]], [[1.0, 0.0]]]), atol=1e-5,
                               rtol=0)


# --- multi-Otsu -----------------------------------------------------------------------------

def objective(counts: np.ndarray, thresholds, values: np.ndarray | None = None) -> float:
    """Sum of S^2 / P over the classes the threshold bins make (float64)."""
    values = np.arange(len(counts)) if values is None else values
    starts = [0] + [t + 1 for t in thresholds]
    ends = list(thresholds) + [len(counts) - 1]
    total = 0.0
    for a, b in zip(starts, ends, strict=True):
        p = counts[a:b + 1].sum()
        total += (counts[a:b + 1] * values[a:b + 1]).sum() ** 2 / p if p > 0 else 0.0
    return total


def test_multiotsu_matches_brute_force_enumeration() -> None:
    rng = np.random.default_rng(0)
    for _ in range(60):
        n = int(rng.integers(4, 12))
        classes = int(rng.integers(2, min(5, n) + 1))
        counts = rng.uniform(0, 10, n) * (rng.uniform(size=n) > 0.2)
        ours = multiotsu_bins(torch.from_numpy(counts), classes).tolist()
        best = max(objective(counts, t) for t in itertools.combinations(range(n - 1),
                                                                         classes - 1))
        assert objective(counts, ours) == pytest.approx(best, rel=1e-12)
        assert ours == sorted(set(ours)) and ours[-1] <= n - 2


def test_multiotsu_hand_computed_cases() -> None:
    assert multiotsu_bins(torch.tensor([5.0, 0, 0, 5]), 2).tolist() == [0]  # first of the ties
    assert multiotsu_bins(torch.tensor([0.0, 4, 0, 0, 4, 0, 0, 4]), 3).tolist() == [1, 4]
    # [9,1,1,9]: {0},{1,2,3} scores 0 + (1+2+27)^2/11 = 81.8; {0,1},{2,3} 1/10 + 29^2/10 = 84.2
    assert multiotsu_bins(torch.tensor([9.0, 1, 1, 9]), 2).tolist() == [1]


def test_multiotsu_agrees_with_scikit_image() -> None:
    skimage_filters = pytest.importorskip("skimage.filters")
    rng = np.random.default_rng(1)
    for n in (16, 32, 64, 256):
        for classes in (2, 3, 4):
            counts = rng.integers(1, 1000, n).astype(np.float64)
            # scikit-image weights bin 0 by 1 in its first moment (values 1, 1, 2, 3, ...)
            values = np.arange(n, dtype=np.float64)
            values[0] = 1
            ours = multiotsu_bins(torch.from_numpy(counts), classes,
                                  torch.from_numpy(values)).numpy()
            theirs = skimage_filters.threshold_multiotsu(hist=counts, classes=classes)
            if not np.array_equal(ours, theirs):  # a float32 near-tie on their side
                assert objective(counts, ours, values) >= objective(counts, theirs, values)
                assert objective(counts, theirs, values) == pytest.approx(
                    objective(counts, ours, values), rel=1e-6)


def test_class_table_has_zero_for_empty_classes() -> None:
    table = class_variance_table(torch.tensor([0.0, 2, 0]), torch.arange(3.0))
    assert table[0, 0] == 0 and table[1, 1] == 2 and table[0, 2] == 2 and table[2, 0] == -np.inf


def test_adaptive_threshold_on_two_levels() -> None:
    values = torch.cat([torch.full((300,), 0.1), torch.full((100,), 0.9)])
    result = adaptive_threshold(values)
    # 256 bins over [0.1, 0.9]: c=2 puts 0.1 (bin 0) below the centre of bin 0; c=3, 4 are NaN
    assert result.classes == 2
    assert result.threshold == pytest.approx(0.1 + 0.5 * 0.8 / 256)
    assert np.isnan(result.scores[3]) and np.isnan(result.scores[4])
    assert int((values > result.threshold).sum()) == 100


def test_adaptive_threshold_prefers_the_best_scoring_class_count() -> None:
    rng = np.random.default_rng(2)
    groups = [rng.uniform(0.0, 0.1, 4000), rng.uniform(0.45, 0.55, 3000),
              rng.uniform(0.9, 1.0, 2000)]
    values = torch.from_numpy(np.concatenate(groups))
    result = adaptive_threshold(values)
    # three tight groups: 3 classes win, with class means near 0.05, 0.5, 0.95
    assert result.classes == 3
    assert result.scores[3] == pytest.approx(np.var([0.05, 0.5, 0.95]) / np.sqrt(3), rel=3e-2)
    # the empty bins between groups tie; the lowest threshold wins: the centre of the bin that
    # holds the middle group's largest value
    low, width = float(values.min()), float(values.max() - values.min()) / 256
    top_bin = np.floor((groups[1].max() - low) / width)
    assert result.threshold == pytest.approx(low + (top_bin + 0.5) * width, rel=1e-9)


def test_adaptive_threshold_of_a_constant_masks_nothing() -> None:
    result = adaptive_threshold(torch.full((4, 5), 0.3))
    assert result.classes is None and not (torch.full((4, 5), 0.3) > result.threshold).any()


# --- composed masks -------------------------------------------------------------------------

def planted_clip(n: int = 4, h: int = 4, w: int = 6, c: int = 8, dim: int = 16):
    """Maps where tokens of a 2 x 2 block move (low, varying as view 2; high, steady as view 1)."""
    rng = np.random.default_rng(0)
    edges = symmetric_complete(n)
    moving = np.zeros((h, w), bool)
    moving[1:3, 3:5] = True
    maps1 = np.where(moving[None, :, :, None], rng.uniform(0.0, 0.6, (len(edges), h, w, c)),
                     0.9 + rng.uniform(0, 0.02, (len(edges), h, w, c))).astype(np.float32)
    maps2 = np.where(moving[None, :, :, None], 0.9 + rng.uniform(0, 0.02, (len(edges), h, w, c)),
                     rng.uniform(0.0, 0.6, (len(edges), h, w, c))).astype(np.float32)
    features = np.where(moving[None, :, :, None], 5.0, -5.0) + rng.normal(size=(n, h, w, dim))
    return edges, maps1, maps2, features.astype(np.float32), moving


def test_attention_masks_find_the_planted_region() -> None:
    edges, maps1, maps2, features, moving = planted_clip()
    image_size = (4 * 16, 6 * 16)
    result = attention_masks(edges, maps1, maps2, features, image_size, clusters=4)
    assert isinstance(result, MotionMasks) and result.method == "easi3r"
    assert result.masks.shape == result.maps.shape == (4, *image_size)
    assert result.masks.dtype == np.bool_ and result.maps.dtype == np.float32
    assert np.isfinite(result.maps).all() and 0 <= result.maps.min() <= result.maps.max() <= 1
    # inside the moving tokens' pixels, and at most the bilinear ramp (8 px) beyond them
    truth = np.kron(moving, np.ones((16, 16), bool))
    core = np.zeros_like(truth)
    core[16 + 8:48 - 8, 48 + 8:80 - 8] = True
    reach = np.zeros_like(truth)
    reach[16 - 8:48 + 8, 48 - 8:80 + 8] = True
    assert result.masks[:, core].all() and not result.masks[:, ~reach].any()


def test_attention_masks_reject_mismatched_features() -> None:
    edges, maps1, maps2, features, _ = planted_clip()
    with pytest.raises(InputError, match="token grid"):
        attention_masks(edges, maps1, maps2, features[:, :3], (64, 96))


def test_upsample_is_bilinear_half_pixel() -> None:
    maps = torch.tensor([[[0.0, 1.0]]])
    out = upsample_maps(maps, (1, 4))
    torch.testing.assert_close(out, torch.tensor([[[0.0, 0.25, 0.75, 1.0]]]))
